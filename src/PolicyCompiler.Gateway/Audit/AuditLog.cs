using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Audit;

/// <summary>Settings of an <see cref="AuditLog"/>.</summary>
public sealed class AuditLogOptions
{
    /// <summary>The gateway's name (written on every line).</summary>
    public string GatewayName { get; init; } = "gateway";

    /// <summary>The SHA-256 of the enforced policy (written on every line).</summary>
    public string PolicySha256 { get; init; } = string.Empty;

    /// <summary>Also write the canonical arguments themselves, not only their hash (they may hold secrets).</summary>
    public bool IncludeArguments { get; init; }

    /// <summary>How many records may wait for the writer before the gateway waits for it (backpressure, nothing is dropped).</summary>
    public int Capacity { get; init; } = 8192;

    /// <summary>The clock for the lines' <c>time</c>.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// The JSONL audit log (docs/gateway.md, "Audit log"): one line per decision, and one per upstream
/// outcome of a forwarded call. The hot path only queues a struct into a bounded channel; a
/// background writer formats with <see cref="Utf8JsonWriter"/>, hashes the canonical arguments and
/// writes. <see cref="DisposeAsync"/> drains the queue and flushes, so a graceful stop loses nothing.
/// When the file cannot be written the log turns unhealthy and the gateway refuses calls (fail closed)
/// unless it runs with <c>--audit-fail-open</c>.
/// </summary>
public sealed class AuditLog : IAsyncDisposable
{
    private readonly Channel<AuditEntry> _channel;
    private readonly Stream? _stream;
    private readonly AuditLogOptions _options;
    private readonly ILogger _logger;
    private readonly Task _writer;
    private readonly ArrayBufferWriter<byte> _line = new(1024);
    private readonly ArrayBufferWriter<byte> _canonical = new(1024);
    private readonly Utf8JsonWriter _json;
    private volatile bool _healthy;

    private AuditLog(Stream? stream, AuditLogOptions options, ILogger logger)
    {
        _stream = stream;
        _options = options;
        _logger = logger;
        _healthy = stream is not null;
        _json = new Utf8JsonWriter(_line, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        _channel = Channel.CreateBounded<AuditEntry>(new BoundedChannelOptions(options.Capacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>The current time for a record.</summary>
    internal DateTimeOffset Now => _options.Time.GetUtcNow();

    /// <summary>Whether lines can be written. False after any write failure (or when the file could not be opened).</summary>
    public bool IsHealthy => _healthy;

    /// <summary>Opens (appends to) <paramref name="path"/>. Never throws: a file that cannot be opened gives an unhealthy log.</summary>
    public static AuditLog Open(string path, AuditLogOptions options, ILogger? logger = null)
    {
        logger ??= NullLogger.Instance;
        Stream? stream = null;
        try
        {
            stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            GatewayLog.AuditOpenFailed(logger, path, e);
        }

        return new AuditLog(stream, options, logger);
    }

    /// <summary>Writes to <paramref name="stream"/> (tests, or a caller-managed sink). The log owns and disposes the stream.</summary>
    public static AuditLog Create(Stream stream, AuditLogOptions options, ILogger? logger = null) =>
        new(stream, options, logger ?? NullLogger.Instance);

    /// <summary>Queues an entry; the log takes ownership of its buffer. Waits only when the queue is full.</summary>
    internal void Record(ref AuditEntry entry)
    {
        if (!_channel.Writer.TryWrite(entry))
        {
            // Queue full (the disk is slower than the calls): wait rather than lose a record.
            try
            {
                _channel.Writer.WriteAsync(entry).AsTask().GetAwaiter().GetResult();
            }
            catch (ChannelClosedException)
            {
                entry.Release();
            }
        }

        entry.Buffer = null;
    }

    /// <summary>Drains every queued record, flushes and closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        _channel.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
        if (_stream is not null)
        {
            try
            {
                await _stream.DisposeAsync().ConfigureAwait(false);
            }
            catch (IOException e)
            {
                GatewayLog.AuditWriteFailed(_logger, e);
            }
        }

        await _json.DisposeAsync().ConfigureAwait(false);
    }

    private async Task WriteLoopAsync()
    {
        ChannelReader<AuditEntry> reader = _channel.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out AuditEntry entry))
            {
                try
                {
                    if (_healthy)
                    {
                        FormatLine(ref entry);
                        _stream!.Write(_line.WrittenSpan);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException or NotSupportedException)
                {
                    Fail(e);
                }
                finally
                {
                    entry.Release();
                }
            }

            // Flush whenever the queue runs dry: records reach the file within one burst.
            try
            {
                if (_healthy)
                {
                    _stream!.Flush();
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
            {
                Fail(e);
            }
        }
    }

    private void Fail(Exception e)
    {
        if (_healthy)
        {
            _healthy = false;
            GatewayLog.AuditWriteFailed(_logger, e);
        }
    }

    private void FormatLine(ref AuditEntry entry)
    {
        _line.ResetWrittenCount();
        _json.Reset(_line);
        _json.WriteStartObject();
        _json.WriteString("time"u8, entry.Time.UtcDateTime);
        _json.WriteString("event"u8, entry.Kind switch
        {
            AuditEntryKind.Decision => "decision"u8,
            AuditEntryKind.Approval => "approval"u8,
            _ => "upstream"u8,
        });
        _json.WriteString("gateway"u8, _options.GatewayName);
        _json.WriteString("policySha256"u8, _options.PolicySha256);
        _json.WriteString("session"u8, entry.Session);
        _json.WriteString("grant"u8, entry.Grant);
        _json.WritePropertyName("id"u8);
        entry.Id.WriteTo(_json);
        _json.WriteString("tool"u8, entry.Name);
        if (entry.Kind == AuditEntryKind.Decision)
        {
            _json.WriteString("decision"u8, ReplyWriter.DecisionName(entry.Decision));
            _json.WriteString("action"u8, entry.Forwarded ? "forwarded"u8 : entry.Held ? "held"u8 : "blocked"u8);
            _json.WriteBoolean("shadow"u8, entry.Shadow);
            _json.WriteString("rule"u8, entry.Rule);
            if (entry.Reason is not null)
            {
                _json.WriteString("reason"u8, entry.Reason);
            }

            if (entry.Counter is not null)
            {
                _json.WriteString("counter"u8, entry.Counter);
            }

            if (entry.Decision == DecisionKind.RateLimited)
            {
                if (entry.RetryAfterSeconds >= 0)
                {
                    _json.WriteNumber("retryAfterSeconds"u8, entry.RetryAfterSeconds);
                }
                else
                {
                    _json.WriteNull("retryAfterSeconds"u8);
                }
            }

            if (entry.ApprovalId is not null)
            {
                _json.WriteString("approval"u8, entry.ApprovalId);
            }

            WriteArguments(ref entry);
            _json.WriteNumber("decisionNs"u8, entry.DecisionNanoseconds);
        }
        else if (entry.Kind == AuditEntryKind.Approval)
        {
            WriteApproval(ref entry);
        }
        else
        {
            _json.WriteString("outcome"u8, entry.Outcome switch
            {
                UpstreamOutcome.Result => "result"u8,
                UpstreamOutcome.ToolError => "tool_error"u8,
                UpstreamOutcome.Error => "error"u8,
                UpstreamOutcome.Cancelled => "cancelled"u8,
                _ => "no_response"u8,
            });
            _json.WriteNumber("latencyNs"u8, entry.LatencyNanoseconds);
        }

        _json.WriteEndObject();
        _json.Flush();
        _line.GetSpan(1)[0] = (byte)'\n';
        _line.Advance(1);
    }

    /// <summary>An approval line (docs/approvals.md, "Audit"): the request, or its answer and who gave it.</summary>
    private void WriteApproval(ref AuditEntry entry)
    {
        if (entry.ApprovalId is not null)
        {
            _json.WriteString("approval"u8, entry.ApprovalId);
        }

        _json.WriteString("status"u8, ApprovalBroker.StatusName(entry.ApprovalStatus));
        if (entry.ApprovalVia is { } via)
        {
            _json.WriteString("via"u8, ApprovalBroker.ChannelName(via));
        }

        _json.WriteString("rule"u8, entry.Rule);
        if (entry.Reason is not null)
        {
            _json.WriteString("reason"u8, entry.Reason);
        }

        if (entry.ApprovalBy is not null)
        {
            _json.WriteString("by"u8, entry.ApprovalBy);
        }

        if (entry.ApprovalNote is not null)
        {
            _json.WriteString("note"u8, entry.ApprovalNote);
        }

        if (entry.ApprovalStatus == ApprovalStatus.Approved)
        {
            _json.WriteString("scope"u8, ApprovalBroker.ScopeName(entry.ApprovalScope));
        }

        if (entry.ApprovalExpires is { } expires)
        {
            _json.WriteString("expires"u8, expires.UtcDateTime);
        }

        if (entry.HasArguments)
        {
            WriteArguments(ref entry);
        }
    }

    private void WriteArguments(ref AuditEntry entry)
    {
        _canonical.ResetWrittenCount();
        try
        {
            CanonicalJson.Write(entry.Arguments, _canonical);
        }
        catch (JsonException)
        {
            // Cannot happen for arguments the classifier accepted; hash the raw bytes rather than lose the line.
            _canonical.ResetWrittenCount();
            _canonical.Write(entry.Arguments);
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(_canonical.WrittenSpan, hash);
        Span<char> hex = stackalloc char[SHA256.HashSizeInBytes * 2];
        Convert.TryToHexStringLower(hash, hex, out _);
        _json.WriteString("argumentsSha256"u8, hex);
        if (_options.IncludeArguments)
        {
            _json.WritePropertyName("arguments"u8);
            _json.WriteRawValue(_canonical.WrittenSpan, skipInputValidation: true);
        }
    }
}
