using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State;

namespace PolicyCompiler.Gateway.Enforcement;

/// <summary>
/// The two forwarding loops of one MCP session and the enforcement between them.
/// <code>
///   client ──(1) frame ──(2) classify ──(3) decide ──(4) forward ──▶ upstream
///     ▲                                     │ blocked / invalid
///     └──────────(5) reply ◀────────────────┘
///   client ◀──(8) forward ◀──(7) filter tools/list, settle tools/call ◀──(6) frame + classify ◀── upstream
/// </code>
/// (1) split the client's bytes into lines, refusing oversized ones; (2) read method, id, name and
/// arguments, refusing what could be read two ways; (3) ask the policy about every tools/call;
/// (4) forward allowed calls and everything else byte-for-byte; (5) answer refused messages ourselves;
/// (6) frame and classify the upstream's messages; (7) match responses to the client's requests by
/// id: filter tools/list results, commit a call's counters, audit its outcome; (8) forward.
/// When the upstream closes, every request still waiting is answered with an error and rolled back.
/// </summary>
internal sealed class PolicyProxy
{
    /// <summary>Rule pointer of a refusal because the audit log cannot be written.</summary>
    public const string AuditUnavailableRule = ToolCallEnforcer.AuditUnavailableRule;

    /// <summary>Rule pointer of a refusal because the evaluator failed.</summary>
    public const string InternalErrorRule = ToolCallEnforcer.InternalErrorRule;

    /// <summary>Rule pointer of a refusal because the counter store is unavailable (<c>--state-fail-mode closed</c>, docs/state.md).</summary>
    public const string StateUnavailableRule = ToolCallEnforcer.StateUnavailableRule;

    private readonly IPolicyEvaluator _evaluator;
    private readonly GatewayOptions _options;
    private readonly AuditLog? _audit;
    private readonly ILogger _logger;
    private readonly PendingRequests _pending = new();
    private readonly ToolCallEnforcer _enforcer;
    private readonly PinVerifier _pins;
    private readonly SemaphoreSlim _clientWriteLock = new(1, 1);
    private readonly TaskCompletionSource _clientClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PipeWriter _clientOut;
    private bool _clientOutCompleted;
    private volatile bool _upstreamGone;
    private int _unanswered;

    public PolicyProxy(PipeWriter clientOut, IPolicyEvaluator evaluator, GatewayOptions options, AuditLog? audit, ILogger logger)
    {
        _clientOut = clientOut;
        _evaluator = evaluator;
        _options = options;
        _audit = audit;
        _logger = logger;
        _enforcer = new ToolCallEnforcer(evaluator, audit, options.AuditFailOpen, logger);
        _pins = new PinVerifier(logger);
    }

    /// <summary>Completes when the client has closed its side (end of input).</summary>
    public Task ClientClosed => _clientClosed.Task;

    /// <summary>How many client requests the upstream never answered (each got error -32001).</summary>
    public int UnansweredRequests => Volatile.Read(ref _unanswered);

    /// <summary>Client → upstream: steps (1)–(5).</summary>
    public async Task RunClientToUpstreamAsync(PipeReader clientIn, PipeWriter upstreamOut, CancellationToken cancellationToken)
    {
        var framer = new LineFramer(_options.MaxMessageBytes);
        var classifier = new MessageClassifier();
        var replies = new ReplyWriter();
        var replyBuffer = new ArrayBufferWriter<byte>(512);
        try
        {
            while (true)
            {
                ReadResult read = await clientIn.ReadAsync(cancellationToken).ConfigureAwait(false);
                if (read.IsCanceled)
                {
                    break;
                }

                ReadOnlySequence<byte> buffer = read.Buffer;
                try
                {
                    while (true)
                    {
                        // Step 1: frame.
                        FrameStatus frame = framer.TryReadMessage(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> message);
                        if (frame == FrameStatus.Incomplete)
                        {
                            break;
                        }

                        if (frame == FrameStatus.Oversized)
                        {
                            GatewayLog.ClientMessageOversized(_logger, _options.MaxMessageBytes);
                            replies.WriteError(replyBuffer, classifier.PeekId(message), JsonRpcErrorCodes.InvalidRequest, "Invalid Request: the message exceeds the gateway's size limit (--max-message-bytes)");
                            continue;
                        }

                        HandleClientMessage(message, classifier, replies, replyBuffer, upstreamOut);
                    }
                }
                finally
                {
                    clientIn.AdvanceTo(buffer.Start, buffer.End);
                }

                if (upstreamOut.UnflushedBytes > 0 && !_upstreamGone)
                {
                    try
                    {
                        FlushResult flushed = await upstreamOut.FlushAsync(cancellationToken).ConfigureAwait(false);
                        if (flushed.IsCompleted)
                        {
                            _upstreamGone = true;
                        }
                    }
                    catch (IOException e)
                    {
                        // The upstream's input is gone (it exited): its output loop answers what is pending.
                        GatewayLog.UpstreamWriteFailed(_logger, e.Message);
                        _upstreamGone = true;
                    }
                }

                if (replyBuffer.WrittenCount > 0)
                {
                    await WriteToClientAsync(replyBuffer.WrittenMemory, cancellationToken).ConfigureAwait(false);
                    replyBuffer.ResetWrittenCount();
                }

                if (read.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            _clientClosed.TrySetResult();
            await clientIn.CompleteAsync().ConfigureAwait(false);

            // The client is done: close the upstream's input so it can finish (stdio shutdown, basic/lifecycle#stdio).
            try
            {
                await upstreamOut.CompleteAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Upstream → client: steps (6)–(8); on the upstream's end, answers every request still waiting.</summary>
    public async Task RunUpstreamToClientAsync(PipeReader upstreamIn, CancellationToken cancellationToken)
    {
        PipeWriter clientOut = _clientOut;
        var framer = new LineFramer(_options.MaxMessageBytes);
        var classifier = new MessageClassifier();
        var filter = new ToolsListFilter(_pins);
        var replies = new ReplyWriter();
        try
        {
            while (true)
            {
                ReadResult read = await upstreamIn.ReadAsync(cancellationToken).ConfigureAwait(false);
                if (read.IsCanceled)
                {
                    break;
                }

                ReadOnlySequence<byte> buffer = read.Buffer;
                await _clientWriteLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    try
                    {
                        while (true)
                        {
                            // Step 6: frame and classify.
                            FrameStatus frame = framer.TryReadMessage(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> message);
                            if (frame == FrameStatus.Incomplete)
                            {
                                break;
                            }

                            if (frame == FrameStatus.Oversized)
                            {
                                // Cannot forward half a message; if it answers a request, answer that request ourselves.
                                GatewayLog.UpstreamMessageOversized(_logger, _options.MaxMessageBytes);
                                RequestId id = classifier.PeekId(message);
                                if (id.HasValue && _pending.TryRemove(id, out PendingRequest request))
                                {
                                    Settle(ref request, id, UpstreamOutcome.Error, commit: true);
                                    replies.WriteError(clientOut, id, JsonRpcErrorCodes.ResponseTooLarge, "The upstream server's response exceeds the gateway's size limit (--max-message-bytes)");
                                }

                                continue;
                            }

                            HandleUpstreamMessage(message, classifier, filter, clientOut);
                        }
                    }
                    finally
                    {
                        upstreamIn.AdvanceTo(buffer.Start, buffer.End);
                    }

                    if (clientOut.UnflushedBytes > 0)
                    {
                        await clientOut.FlushAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _clientWriteLock.Release();
                }

                if (read.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            _upstreamGone = true;
            await upstreamIn.CompleteAsync().ConfigureAwait(false);
            await FailPendingAsync(replies, clientOut).ConfigureAwait(false);
        }
    }

    private void HandleClientMessage(in ReadOnlySequence<byte> message, MessageClassifier classifier, ReplyWriter replies, ArrayBufferWriter<byte> replyBuffer, PipeWriter upstreamOut)
    {
        // Step 2: classify.
        ClassifyStatus status = classifier.Classify(message, strict: true);
        switch (status)
        {
            case ClassifyStatus.Empty:
                return;
            case ClassifyStatus.Ok:
                break;
            case ClassifyStatus.ParseError:
                GatewayLog.ClientMessageRefused(_logger, classifier.Detail);
                replies.WriteError(replyBuffer, default, JsonRpcErrorCodes.ParseError, classifier.Detail);
                return;
            default:
                if (classifier.Kind == MessageKind.Notification)
                {
                    // JSON-RPC 2.0 §4.1: a notification is never answered, even with an error.
                    GatewayLog.ClientNotificationDropped(_logger, classifier.Detail);
                    return;
                }

                GatewayLog.ClientMessageRefused(_logger, classifier.Detail);
                replies.WriteError(
                    replyBuffer,
                    status == ClassifyStatus.Batch ? default : classifier.Id,
                    status == ClassifyStatus.InvalidParams ? JsonRpcErrorCodes.InvalidParams : JsonRpcErrorCodes.InvalidRequest,
                    classifier.Detail);
                return;
        }

        if (classifier.Kind != MessageKind.Request)
        {
            if (classifier.Method == KnownMethod.Cancelled && classifier.Kind == MessageKind.Notification && classifier.CancelledId.HasValue)
            {
                ForgetCancelled(classifier.CancelledId);
            }

            // Notifications (progress, cancellation...) and responses to the server's own requests pass untouched.
            if (!_upstreamGone)
            {
                SequenceWriter.WriteLine(upstreamOut, message);
            }

            return;
        }

        RequestId id = classifier.Id;
        if (classifier.Method == KnownMethod.ToolsCall)
        {
            DecideToolCall(message, classifier, replies, replyBuffer, upstreamOut);
            return;
        }

        var pending = new PendingRequest { Method = classifier.Method };
        if (Track(id, ref pending, replies, replyBuffer))
        {
            SequenceWriter.WriteLine(upstreamOut, message);
        }
    }

    /// <summary>Step 3: decide a tools/call, then forward it (4) or answer it (5).</summary>
    private void DecideToolCall(in ReadOnlySequence<byte> message, MessageClassifier classifier, ReplyWriter replies, ArrayBufferWriter<byte> replyBuffer, PipeWriter upstreamOut)
    {
        RequestId id = classifier.Id;
        if (_pending.Contains(id))
        {
            // Checked before deciding, so a refused duplicate takes no counter.
            replies.WriteError(replyBuffer, id, JsonRpcErrorCodes.InvalidRequest, "Invalid Request: a request with this id is already in flight");
            return;
        }

        // The decision, its audit line and a blocked call's rollback are shared with the HTTP transport.
        ReadOnlySpan<byte> name = classifier.ToolName;
        EnforcedCall call = _enforcer.Decide(id, name, classifier.ArgumentsJson, _options.Grant, _options.Session, _pins);
        if (!call.Forward)
        {
            replies.WriteBlocked(replyBuffer, id, name, call.Decision, call.Reason);
            return;
        }

        PendingRequest pending = _enforcer.CreatePending(call, name);
        if (Track(id, ref pending, replies, replyBuffer))
        {
            SequenceWriter.WriteLine(upstreamOut, message);
        }
        else
        {
            Settle(ref pending, id, UpstreamOutcome.NoResponse, commit: false);
        }
    }

    /// <summary>Records a request about to be forwarded; answers it with an error when that is impossible.</summary>
    private bool Track(in RequestId id, ref PendingRequest pending, ReplyWriter replies, ArrayBufferWriter<byte> replyBuffer)
    {
        AddResult added = _upstreamGone ? AddResult.Closed : _pending.TryAdd(id, pending);
        switch (added)
        {
            case AddResult.Added:
                return true;
            case AddResult.Duplicate:
                replies.WriteError(replyBuffer, id, JsonRpcErrorCodes.InvalidRequest, "Invalid Request: a request with this id is already in flight");
                return false;
            default:
                Interlocked.Increment(ref _unanswered);
                replies.WriteError(replyBuffer, id, JsonRpcErrorCodes.UpstreamClosed, UpstreamClosedMessage);
                return false;
        }
    }

    /// <summary>
    /// The client cancelled one of its requests (basic/utilities/cancellation): the server should not answer
    /// it, so its pending entry is dropped now rather than held until the session ends. A cancelled
    /// tools/call did reach the server, so its counters are committed and the audit log says
    /// <c>cancelled</c>. A response that still arrives is forwarded unchanged (a tools/list one still filtered).
    /// </summary>
    private void ForgetCancelled(in RequestId id)
    {
        if (!_pending.TryRemove(id, out PendingRequest request))
        {
            return; // already answered, refused by the gateway, or never sent: the notification just passes
        }

        if (request.Method == KnownMethod.ToolsCall)
        {
            Settle(ref request, id, UpstreamOutcome.Cancelled, commit: true);
            return;
        }

        if (request.Method == KnownMethod.ToolsList)
        {
            _pending.RememberCancelledList(id);
        }

        request.Release();
    }

    private const string UpstreamClosedMessage = "The upstream MCP server exited before answering this request";

    /// <summary>Steps 7 and 8 for one upstream message.</summary>
    private void HandleUpstreamMessage(in ReadOnlySequence<byte> message, MessageClassifier classifier, ToolsListFilter filter, PipeWriter clientOut)
    {
        ClassifyStatus status = classifier.Classify(message, strict: false);
        if (status == ClassifyStatus.Ok && classifier.Kind == MessageKind.Response && classifier.Id.HasValue)
        {
            if (_pending.TryRemove(classifier.Id, out PendingRequest request))
            {
                if (request.Method == KnownMethod.ToolsCall)
                {
                    UpstreamOutcome outcome = classifier.HasError ? UpstreamOutcome.Error
                        : _audit is not null && ToolResult.IsError(message, classifier.ResultStart, classifier.ResultLength) ? UpstreamOutcome.ToolError
                        : UpstreamOutcome.Result;
                    Settle(ref request, classifier.Id, outcome, commit: true);
                }
                else if (request.Method == KnownMethod.ToolsList && TryFilterToolsList(message, classifier, filter, clientOut))
                {
                    return;
                }
            }
            else if (classifier.HasResult && _pending.TryTakeCancelledList(classifier.Id) && TryFilterToolsList(message, classifier, filter, clientOut))
            {
                // The late answer to a cancelled tools/list: forwarded, but filtered like any other.
                return;
            }
        }
        else if (status is ClassifyStatus.ParseError or ClassifyStatus.InvalidRequest or ClassifyStatus.Batch)
        {
            GatewayLog.UpstreamMessageUnreadable(_logger, classifier.Detail);
        }

        SequenceWriter.WriteLine(clientOut, message);
    }

    /// <summary>Writes the filtered tools/list response; false when it must be forwarded as is.</summary>
    private bool TryFilterToolsList(in ReadOnlySequence<byte> message, MessageClassifier classifier, ToolsListFilter filter, PipeWriter clientOut)
    {
        if (!classifier.HasResult || IsShadow())
        {
            return false;
        }

        try
        {
            return filter.TryFilter(message, classifier.ResultStart, classifier.ResultLength, _evaluator, clientOut, out _);
        }
        catch (System.Text.Json.JsonException)
        {
            // Unreachable for a message the classifier read; forward it as is.
            return false;
        }
    }

    private bool IsShadow()
    {
        try
        {
            return _evaluator.Policy.Mode == PolicyMode.Shadow;
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>Ends a forwarded call: commits (answered) or rolls back (never answered) its counters and audits the outcome.</summary>
    private void Settle(ref PendingRequest request, in RequestId id, UpstreamOutcome outcome, bool commit) =>
        _enforcer.Settle(ref request, id, outcome, commit, _options.Grant, _options.Session);

    /// <summary>The upstream is gone: answer every request still waiting (error -32001) and refund its counters.</summary>
    private async Task FailPendingAsync(ReplyWriter replies, PipeWriter clientOut)
    {
        var drained = new List<KeyValuePair<RequestId, PendingRequest>>();
        int count = _pending.Close(drained);
        await _clientWriteLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (count > 0)
            {
                Interlocked.Add(ref _unanswered, count);
                GatewayLog.UpstreamClosedWithPending(_logger, count);
                foreach (KeyValuePair<RequestId, PendingRequest> entry in drained)
                {
                    PendingRequest request = entry.Value;
                    Settle(ref request, entry.Key, UpstreamOutcome.NoResponse, commit: false);
                    replies.WriteError(clientOut, entry.Key, JsonRpcErrorCodes.UpstreamClosed, UpstreamClosedMessage);
                }

                using var timeout = new CancellationTokenSource(_options.ShutdownGrace);
                try
                {
                    await clientOut.FlushAsync(timeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or IOException)
                {
                    // The client stopped reading: nothing more can be told.
                }
            }

            _clientOutCompleted = true;
            await clientOut.CompleteAsync().ConfigureAwait(false);
        }
        finally
        {
            _clientWriteLock.Release();
        }
    }

    private async ValueTask WriteToClientAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _clientWriteLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_clientOutCompleted)
            {
                return;
            }

            await _clientOut.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _clientWriteLock.Release();
        }
    }
}
