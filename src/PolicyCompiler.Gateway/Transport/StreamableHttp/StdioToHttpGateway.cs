using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// <c>GATEWAY stdio --upstream URL</c> (docs/http.md "A local client in front of a remote server"): a local
/// client speaks newline JSON on stdin/stdout, the upstream is a Streamable HTTP endpoint. The enforcement
/// is the stdio gateway's own (<see cref="StdioGateway.RunAsync"/>, unchanged); only its upstream pipes are
/// connected to an <see cref="HttpUpstreamBridge"/> instead of a child process, so decisions, replies,
/// tools/list filtering and counter settling are exactly the stdio ones.
/// </summary>
public static class StdioToHttpGateway
{
    /// <summary>Proxies one session until the client closes its input; then deletes the upstream session.</summary>
    /// <param name="clientIn">Messages from the client.</param>
    /// <param name="clientOut">Messages to the client.</param>
    /// <param name="upstream">The upstream's MCP endpoint.</param>
    /// <param name="upstreamHeaders">Headers sent with every upstream request (the gateway's credentials).</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="options">Grant, session, limits.</param>
    /// <param name="audit">The audit log, or null.</param>
    /// <param name="logger">Diagnostics.</param>
    /// <param name="handler">Sends upstream requests (tests); a <see cref="SocketsHttpHandler"/> when null.</param>
    /// <param name="cancellationToken">Stops the session.</param>
    public static async Task<GatewayRunResult> RunAsync(
        PipeReader clientIn,
        PipeWriter clientOut,
        Uri upstream,
        IReadOnlyList<KeyValuePair<string, string>> upstreamHeaders,
        IPolicyEvaluator evaluator,
        GatewayOptions options,
        AuditLog? audit = null,
        ILogger? logger = null,
        HttpMessageHandler? handler = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(options);
        logger ??= NullLogger.Instance;
        var toUpstream = new Pipe();
        var fromUpstream = new Pipe();
        using var bridge = new HttpUpstreamBridge(upstream, upstreamHeaders ?? [], handler, fromUpstream.Writer, options.MaxMessageBytes, logger);
        Task pump = bridge.RunAsync(toUpstream.Reader, cancellationToken);
        GatewayRunResult result = await StdioGateway.RunAsync(clientIn, clientOut, fromUpstream.Reader, toUpstream.Writer, evaluator, options, audit, logger, cancellationToken).ConfigureAwait(false);
        try
        {
            await pump.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        return result;
    }
}

/// <summary>
/// Turns the stdio gateway's upstream side into Streamable HTTP (basic/transports#streamable-http): each
/// forwarded line is POSTed in order; JSON bodies and every SSE event's data come back as lines. The
/// session id of the initialize response and the negotiated protocol version go on every later request;
/// end of input waits for open responses and DELETEs the session.
/// </summary>
internal sealed class HttpUpstreamBridge : IDisposable
{
    private static readonly MediaTypeWithQualityHeaderValue Json = new("application/json");
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");
    private readonly Uri _upstream;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _headers;
    private readonly HttpMessageInvoker _http;
    private readonly PipeWriter _toClient;
    private readonly long _maxMessageBytes;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly List<Task> _open = [];
    private readonly CancellationTokenSource _stopListening = new();
    private Task? _listening;
    private string? _sessionId;
    private string? _protocolVersion;

    public HttpUpstreamBridge(Uri upstream, IReadOnlyList<KeyValuePair<string, string>> headers, HttpMessageHandler? handler, PipeWriter toClient, long maxMessageBytes, ILogger logger)
    {
        _upstream = upstream;
        _headers = headers;
        _http = new HttpMessageInvoker(handler ?? new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.All }, disposeHandler: handler is null);
        _toClient = toClient;
        _maxMessageBytes = maxMessageBytes;
        _logger = logger;
    }

    /// <summary>Reads forwarded lines until the gateway completes the pipe; completes <see cref="_toClient"/> at the end.</summary>
    public async Task RunAsync(PipeReader forwarded, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                ReadResult read = await forwarded.ReadAsync(cancellationToken).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = read.Buffer;
                while (buffer.PositionOf((byte)'\n') is SequencePosition end)
                {
                    byte[] message = buffer.Slice(0, end).ToArray();
                    buffer = buffer.Slice(buffer.GetPosition(1, end));
                    await PostAsync(message, cancellationToken).ConfigureAwait(false);
                }

                forwarded.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted || read.IsCanceled)
                {
                    break;
                }
            }

            Task[] open;
            lock (_open)
            {
                open = [.. _open];
            }

            await Task.WhenAll(open).ConfigureAwait(false);
            await _stopListening.CancelAsync().ConfigureAwait(false);
            if (_listening is not null)
            {
                await _listening.ConfigureAwait(false);
            }

            await DeleteSessionAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await forwarded.CompleteAsync().ConfigureAwait(false);
            await _toClient.CompleteAsync().ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        _stopListening.Dispose();
        _http.Dispose();
        _writeLock.Dispose();
    }

    private HttpRequestMessage NewRequest(HttpMethod method)
    {
        var request = new HttpRequestMessage(method, _upstream);
        foreach (KeyValuePair<string, string> header in _headers)
        {
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (_sessionId is not null)
        {
            request.Headers.TryAddWithoutValidation("Mcp-Session-Id", _sessionId);
        }

        if (_protocolVersion is not null)
        {
            request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", _protocolVersion);
        }

        return request;
    }

    /// <summary>POSTs one message; its response body is read concurrently (a tool call may stream for long) unless the session is still being set up.</summary>
    private async Task PostAsync(byte[] message, CancellationToken cancellationToken)
    {
        using HttpRequestMessage request = NewRequest(HttpMethod.Post);
        request.Headers.Accept.Add(Json);
        request.Headers.Accept.Add(EventStream);
        request.Content = new ByteArrayContent(message);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        try
        {
            // In order, awaiting the headers: the initialize response's session id must be known before the next message goes out.
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            await AnswerWithErrorAsync(message, "The upstream server cannot be reached: " + e.Message, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (_sessionId is null && response.Headers.TryGetValues("Mcp-Session-Id", out IEnumerable<string>? ids))
        {
            _sessionId = ids.FirstOrDefault();
        }

        Task body = ReadResponseAsync(message, response, cancellationToken);
        if (_protocolVersion is null)
        {
            // Until initialize has been answered, later messages must carry what it negotiated.
            await body.ConfigureAwait(false);
            return;
        }

        lock (_open)
        {
            _open.RemoveAll(static t => t.IsCompleted);
            _open.Add(body);
        }

        if (_listening is null && _sessionId is not null)
        {
            // After initialize (and the message that followed it): open the stream for server-initiated messages.
            _listening = ListenAsync(CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopListening.Token));
        }
    }

    /// <summary>
    /// The GET stream (basic/transports#listening-for-messages-from-the-server): requests and notifications the
    /// server sends outside any response, e.g. list-changed notifications. A server may not offer one (405).
    /// </summary>
    private async Task ListenAsync(CancellationTokenSource stop)
    {
        using (stop)
        {
            try
            {
                using HttpRequestMessage request = NewRequest(HttpMethod.Get);
                request.Headers.Accept.Add(EventStream);
                using HttpResponseMessage response = await _http.SendAsync(request, stop.Token).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode
                    || !string.Equals(response.Content.Headers.ContentType?.MediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase))
                {
                    return;
                }

                Stream stream = await response.Content.ReadAsStreamAsync(stop.Token).ConfigureAwait(false);
                PipeReader reader = PipeReader.Create(stream);
                try
                {
                    await ReadEventsAsync(reader, stop.Token).ConfigureAwait(false);
                }
                finally
                {
                    await reader.CompleteAsync().ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            }
        }
    }

    private async Task ReadResponseAsync(byte[] message, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            bool answered = false;
            try
            {
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    return;
                }

                if (!response.IsSuccessStatusCode)
                {
                    GatewayBridgeLog.UpstreamStatus(_logger, (int)response.StatusCode);
                    return;
                }

                string? mediaType = response.Content.Headers.ContentType?.MediaType;
                Stream stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                PipeReader reader = PipeReader.Create(stream);
                try
                {
                    if (string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase))
                    {
                        answered = await ReadEventsAsync(reader, cancellationToken).ConfigureAwait(false);
                    }
                    else if (string.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase))
                    {
                        answered = await ReadJsonAsync(reader, cancellationToken).ConfigureAwait(false);
                    }
                }
                finally
                {
                    await reader.CompleteAsync().ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            }
            finally
            {
                if (!answered)
                {
                    await AnswerWithErrorAsync(message, $"The upstream server did not answer (HTTP {(int)response.StatusCode})", cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    private async Task<bool> ReadJsonAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult read = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (read.IsCompleted || read.Buffer.Length > _maxMessageBytes)
            {
                ReadOnlySequence<byte> body = read.Buffer;
                if (body.IsEmpty)
                {
                    return false;
                }

                bool answered = IsResponse(body);
                await WriteLineAsync(body, cancellationToken).ConfigureAwait(false);
                reader.AdvanceTo(body.End);
                return answered;
            }

            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private async Task<bool> ReadEventsAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        bool answered = false;
        var joined = new ArrayBufferWriter<byte>();
        while (true)
        {
            ReadResult read = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = read.Buffer;
            while (SseEventFramer.TryReadEvent(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> sseEvent))
            {
                joined.ResetWrittenCount();
                int lines = SseEventFramer.ReadData(sseEvent, joined, out ReadOnlySequence<byte> data, out bool otherType);
                if (lines == 0 || otherType)
                {
                    continue; // priming events (an id, no data) and non-message events carry nothing for the client
                }

                ReadOnlySequence<byte> payload = lines == 1 ? data : new ReadOnlySequence<byte>(joined.WrittenMemory);
                answered |= IsResponse(payload);
                await WriteLineAsync(payload, cancellationToken).ConfigureAwait(false);
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                return answered;
            }
        }
    }

    /// <summary>Writes one message as a line, learning the negotiated protocol version from the first response that states one.</summary>
    private async Task WriteLineAsync(ReadOnlySequence<byte> payload, CancellationToken cancellationToken)
    {
        if (_protocolVersion is null)
        {
            _protocolVersion = ReadProtocolVersion(payload);
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (ReadOnlyMemory<byte> segment in payload)
            {
                Span<byte> span = _toClient.GetSpan(segment.Length);
                segment.Span.CopyTo(span);
                // A line break inside a message would split it; outside strings it is whitespace, inside one it is invalid JSON anyway.
                span[..segment.Length].Replace((byte)'\n', (byte)' ');
                span[..segment.Length].Replace((byte)'\r', (byte)' ');
                _toClient.Advance(segment.Length);
            }

            _toClient.GetSpan(1)[0] = (byte)'\n';
            _toClient.Advance(1);
            await _toClient.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>A request the upstream did not answer gets an error response, so the gateway settles it and the client is not left waiting.</summary>
    private async Task AnswerWithErrorAsync(byte[] message, string text, CancellationToken cancellationToken)
    {
        string? id = RequestIdOf(message);
        if (id is null)
        {
            return;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("jsonrpc", "2.0");
            writer.WritePropertyName("id");
            writer.WriteRawValue(id);
            writer.WriteStartObject("error");
            writer.WriteNumber("code", JsonRpcErrorCodes.UpstreamClosed);
            writer.WriteString("message", text);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        await WriteLineAsync(new ReadOnlySequence<byte>(buffer.WrittenMemory), cancellationToken).ConfigureAwait(false);
    }

    private async Task DeleteSessionAsync(CancellationToken cancellationToken)
    {
        if (_sessionId is null)
        {
            return;
        }

        try
        {
            using HttpRequestMessage request = NewRequest(HttpMethod.Delete);
            using HttpResponseMessage response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            // The session expires on the server anyway; the client has already gone.
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
        }
    }

    /// <summary>The raw id of a request (has method and id), or null for notifications, responses and unreadable text.</summary>
    private static string? RequestIdOf(byte[] message)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(message);
            JsonElement root = document.RootElement;
            return root.ValueKind == JsonValueKind.Object && root.TryGetProperty("method", out _) && root.TryGetProperty("id", out JsonElement id)
                ? id.GetRawText()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>True when the message is a response (has an id and a result or error, no method).</summary>
    private static bool IsResponse(ReadOnlySequence<byte> payload)
    {
        var reader = new Utf8JsonReader(payload);
        bool hasId = false, hasOutcome = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("method"u8))
                {
                    return false;
                }

                hasId |= reader.ValueTextEquals("id"u8);
                hasOutcome |= reader.ValueTextEquals("result"u8) || reader.ValueTextEquals("error"u8);
                reader.Read();
                reader.Skip();
            }
        }
        catch (JsonException)
        {
            return false;
        }

        return hasId && hasOutcome;
    }

    private static string? ReadProtocolVersion(ReadOnlySequence<byte> payload)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(payload);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("result", out JsonElement result)
                && result.ValueKind == JsonValueKind.Object
                && result.TryGetProperty("protocolVersion", out JsonElement version)
                && version.ValueKind == JsonValueKind.String
                ? version.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>Log messages of <see cref="HttpUpstreamBridge"/>.</summary>
internal static partial class GatewayBridgeLog
{
    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Upstream request failed: {Reason}")]
    public static partial void UpstreamFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Upstream answered HTTP {Status}")]
    public static partial void UpstreamStatus(ILogger logger, int status);
}
