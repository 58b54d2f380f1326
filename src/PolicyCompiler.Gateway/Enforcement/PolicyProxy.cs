using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;
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
/// <para>
/// Approvals (docs/approvals.md): a call decided <c>approval_required</c> is held at step 3 — copied,
/// not forwarded, its id counted as in flight — and, when the client declared the elicitation
/// capability, the client is asked with an <c>elicitation/create</c> request under a gateway-owned id
/// (its answer is intercepted at step 2, never forwarded). The answer comes back on another task:
/// approved, the original bytes are forwarded at step 4 with limits reserved only then; refused, the
/// client gets the reason at step 5. Writes to the upstream therefore come from two places, serialized
/// by an async lock the client loop takes once per read (uncontended: no allocation, no wait).
/// </para>
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

    // Approvals: held calls by client id, and our outstanding elicitation requests by their (gateway-owned) id.
    // Elicitation ids carry a per-process random prefix so they can never equal the upstream server's ids.
    private static readonly string ElicitationIdPrefix = "policycompiler-approval-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)) + "-";
    private readonly ApprovalBroker? _approvals;
    private readonly Lock _heldGate = new();
    private readonly Dictionary<RequestId, HeldCall> _held = new();
    private readonly Dictionary<RequestId, HeldCall> _elicitations = new();
    private int _heldCount;
    private long _nextElicitation;
    private readonly SemaphoreSlim _upstreamWriteLock = new(1, 1);
    private readonly MessageClassifier _releaseClassifier = new(); // used under _upstreamWriteLock
    private PipeWriter? _upstreamOut;
    private bool _upstreamOutCompleted; // under _upstreamWriteLock
    private int _requestsBeforeInitialize;
    private bool _initializeSeen;
    private bool _clientElicitation;
    private string _clientName = "the client's user";

    public PolicyProxy(PipeWriter clientOut, IPolicyEvaluator evaluator, GatewayOptions options, AuditLog? audit, ILogger logger)
    {
        _clientOut = clientOut;
        _evaluator = evaluator;
        _options = options;
        _audit = audit;
        _logger = logger;
        _approvals = options.Approvals;
        _enforcer = new ToolCallEnforcer(evaluator, audit, options.AuditFailOpen, logger, options.Metrics, options.Approvals);
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
        _upstreamOut = upstreamOut;
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
                // Approved calls are written from their own task: one writer at a time (uncontended, this completes synchronously).
                await _upstreamWriteLock.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
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

                    await FlushUpstreamAsync(upstreamOut, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    _upstreamWriteLock.Release();
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
            await _upstreamWriteLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
            try
            {
                _upstreamOutCompleted = true;
                await upstreamOut.CompleteAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
            }
            finally
            {
                _upstreamWriteLock.Release();
            }

            // Nobody is left to answer: what is still held is withdrawn, and the session's standing approvals forgotten.
            if (_approvals is not null)
            {
                foreach (HeldCall held in TakeAllHeld())
                {
                    _approvals.Withdraw(held.Approval.Id, ApprovalChannel.SessionEnd);
                }

                _approvals.EndSession(_options.Session);
            }
        }
    }

    private async ValueTask FlushUpstreamAsync(PipeWriter upstreamOut, CancellationToken cancellationToken)
    {
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
            if (classifier.Kind == MessageKind.Response && Volatile.Read(ref _nextElicitation) > 0 && classifier.Id.IsStringWithPrefix(ElicitationIdPrefix))
            {
                // The answer to our own elicitation/create (even a late one, after another channel answered):
                // the upstream never asked, so it never sees it.
                TryTakeElicitationAnswer(message, classifier);
                return;
            }

            if (classifier.Method == KnownMethod.Cancelled && classifier.Kind == MessageKind.Notification && classifier.CancelledId.HasValue)
            {
                if (Volatile.Read(ref _heldCount) > 0 && TryWithdrawHeld(classifier.CancelledId, replyBuffer))
                {
                    return; // the upstream never saw the held call, so it is not told of its cancellation
                }

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

        if (!_initializeSeen && _approvals is not null && classifier.Method == KnownMethod.Other)
        {
            ReadInitialize(message);
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
        if (_pending.Contains(id) || (Volatile.Read(ref _heldCount) > 0 && IsHeld(id)))
        {
            // Checked before deciding, so a refused duplicate takes no counter.
            replies.WriteError(replyBuffer, id, JsonRpcErrorCodes.InvalidRequest, "Invalid Request: a request with this id is already in flight");
            return;
        }

        // The decision, its audit line and a blocked call's rollback are shared with the HTTP transport.
        ReadOnlySpan<byte> name = classifier.ToolName;
        EnforcedCall call = _enforcer.Decide(id, name, classifier.ArgumentsJson, _options.Grant, _options.Session, _pins);
        if (!call.Forward && call.Decision.Kind == DecisionKind.ApprovalRequired && _approvals is not null)
        {
            Hold(message, classifier, call, replies, replyBuffer, upstreamOut);
            return;
        }

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
        AddResult added = _upstreamGone ? AddResult.Closed
            : Volatile.Read(ref _heldCount) > 0 && IsHeld(id) ? AddResult.Duplicate
            : _pending.TryAdd(id, pending);
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
        // Held calls can never be forwarded now: withdrawn (nobody answers them any more) and failed like the rest.
        List<HeldCall> held = TakeAllHeld();
        foreach (HeldCall call in held)
        {
            _approvals?.Withdraw(call.Approval.Id, ApprovalChannel.SessionEnd);
        }

        await _clientWriteLock.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (HeldCall call in held)
            {
                replies.WriteError(clientOut, call.Id, JsonRpcErrorCodes.UpstreamClosed, UpstreamClosedMessage);
            }

            count += held.Count;
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

    /// <summary>
    /// Step 3 for a call that needs approval: forwarded at once when a standing (session-scoped) approval
    /// covers it; otherwise copied and held, its id in flight, the client asked through elicitation when it can be.
    /// </summary>
    private void Hold(in ReadOnlySequence<byte> message, MessageClassifier classifier, in EnforcedCall call, ReplyWriter replies, ArrayBufferWriter<byte> replyBuffer, PipeWriter upstreamOut)
    {
        RequestId id = classifier.Id;
        ReadOnlySpan<byte> name = classifier.ToolName;
        ApprovalRequest request = ApprovalBroker.Prepare(id, _options.Grant, _options.Session, name, classifier.ArgumentsJson, call.Decision.Rule, call.Reason, _enforcer.ApprovalTimeout(call.Decision.Rule));
        if (_approvals!.TryUseStanding(request))
        {
            ForwardReleased(message, id, name, classifier.ArgumentsJson, approvalId: null, replies, replyBuffer, upstreamOut);
            return;
        }

        PendingApproval? approval = _approvals.Register(request);
        if (approval is null)
        {
            ApprovalLog.TooManyPending(_logger, ApprovalBroker.MaxPending);
            replies.WriteBlocked(replyBuffer, id, name, Decision.Deny(call.Decision.Rule, call.Reason), call.Reason + " (too many calls are waiting for approval, so this one is denied)");
            return;
        }

        var held = new HeldCall(id, message.ToArray(), approval);

        // 2026-07-28: the call itself may carry the client's capabilities (_meta), which then decide.
        ApprovalMessages.ReadClientCapabilities(message, out bool? perCall, out string? perCallName, out _);
        if (!string.IsNullOrEmpty(perCallName))
        {
            _clientName = perCallName;
        }

        lock (_heldGate)
        {
            _held.Add(id, held);
            _heldCount = _held.Count;
            if (perCall ?? _clientElicitation)
            {
                held.ElicitationId = RequestId.FromString(ElicitationIdPrefix + (++_nextElicitation).ToString(System.Globalization.CultureInfo.InvariantCulture));
                _elicitations.Add(held.ElicitationId, held);
            }
        }

        if (held.ElicitationId.HasValue)
        {
            // client/elicitation: the client declared the capability at initialize, so it may be asked.
            ApprovalMessages.WriteElicitationRequest(replyBuffer, held.ElicitationId, approval);
        }

        _ = AwaitHeldAsync(held);
    }

    /// <summary>
    /// Step 4 for an approved call: reserves its limits now (an approval lets a call through, it does not
    /// lift limits) and forwards the original bytes, or answers it rate-limited. Under the upstream write lock.
    /// </summary>
    private void ForwardReleased(in ReadOnlySequence<byte> message, in RequestId id, ReadOnlySpan<byte> name, ReadOnlySpan<byte> arguments, string? approvalId, ReplyWriter replies, ArrayBufferWriter<byte> replyBuffer, PipeWriter upstreamOut)
    {
        EnforcedCall call = _enforcer.Release(id, name, arguments, _options.Grant, _options.Session, approvalId);
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

    /// <summary>Waits for a held call's answer and acts on it: forward (approved), refuse (denied, timed out), or nothing (withdrawn).</summary>
    private async Task AwaitHeldAsync(HeldCall held)
    {
        try
        {
            ApprovalOutcome outcome = await held.Approval.Completion.ConfigureAwait(false);
            var replies = new ReplyWriter();
            var output = new ArrayBufferWriter<byte>(256);
            if (outcome.Status == ApprovalStatus.Approved)
            {
                await _upstreamWriteLock.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                try
                {
                    // Taken under the lock: the client loop cannot see the id free between release and forward.
                    if (!TryTakeHeld(held))
                    {
                        return; // withdrawn meanwhile (cancelled, or the session ended)
                    }

                    CancelElicitation(held, outcome, output);
                    if (_upstreamOutCompleted || _upstreamGone || _upstreamOut is null)
                    {
                        Interlocked.Increment(ref _unanswered);
                        replies.WriteError(output, held.Id, JsonRpcErrorCodes.UpstreamClosed, UpstreamClosedMessage);
                    }
                    else
                    {
                        var message = new ReadOnlySequence<byte>(held.Message);
                        _releaseClassifier.Classify(message, strict: true);
                        ForwardReleased(message, held.Id, _releaseClassifier.ToolName, _releaseClassifier.ArgumentsJson, held.Approval.Id, replies, output, _upstreamOut);
                        await FlushUpstreamAsync(_upstreamOut, CancellationToken.None).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _upstreamWriteLock.Release();
                }
            }
            else
            {
                if (!TryTakeHeld(held))
                {
                    return;
                }

                CancelElicitation(held, outcome, output);
                if (outcome.Status is ApprovalStatus.Denied or ApprovalStatus.TimedOut)
                {
                    string reason = ApprovalMessages.RefusalReason(held.Approval, outcome);
                    byte[] name = System.Text.Encoding.UTF8.GetBytes(held.Approval.Tool);
                    replies.WriteBlocked(output, held.Id, name, Decision.Deny(held.Approval.Rule, reason), reason);
                }
            }

            if (output.WrittenCount > 0)
            {
                await WriteToClientAsync(output.WrittenMemory, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // The client or upstream went away meanwhile: the session's end answers what it can.
            GatewayLog.UpstreamWriteFailed(_logger, e.Message);
        }
    }

    /// <summary>
    /// The held call's elicitation is still open in the client but another channel answered (admin API,
    /// timeout, cancellation): tell the client to close it (basic/utilities/cancellation, our own request).
    /// </summary>
    private void CancelElicitation(HeldCall held, in ApprovalOutcome outcome, ArrayBufferWriter<byte> output)
    {
        if (!held.ElicitationId.HasValue || outcome.Via == ApprovalChannel.Elicitation)
        {
            return;
        }

        bool open;
        lock (_heldGate)
        {
            open = _elicitations.Remove(held.ElicitationId);
        }

        if (open)
        {
            ApprovalMessages.WriteCancelled(output, held.ElicitationId, "the approval was answered elsewhere (" + ApprovalBroker.StatusName(outcome.Status) + " via " + ApprovalBroker.ChannelName(outcome.Via) + ")");
        }
    }

    /// <summary>The client cancelled a held call: withdraw it (the client gets no answer, basic/utilities/cancellation) and close its elicitation.</summary>
    private bool TryWithdrawHeld(in RequestId id, ArrayBufferWriter<byte> replyBuffer)
    {
        HeldCall? held;
        bool elicitationOpen = false;
        lock (_heldGate)
        {
            if (!_held.Remove(id, out held))
            {
                return false;
            }

            _heldCount = _held.Count;
            if (held.ElicitationId.HasValue)
            {
                elicitationOpen = _elicitations.Remove(held.ElicitationId);
            }
        }

        _approvals?.Withdraw(held.Approval.Id, ApprovalChannel.Cancel);
        if (elicitationOpen)
        {
            ApprovalMessages.WriteCancelled(replyBuffer, held.ElicitationId, "the tool call was cancelled");
        }

        return true;
    }

    /// <summary>
    /// Step 2 for a response from the client: when it answers one of our elicitation requests, the answer
    /// goes to the broker (first answer wins) and the message stops here. An error response leaves the
    /// approval waiting for the admin API or its timeout.
    /// </summary>
    private void TryTakeElicitationAnswer(in ReadOnlySequence<byte> message, MessageClassifier classifier)
    {
        HeldCall? held;
        lock (_heldGate)
        {
            if (!_elicitations.Remove(classifier.Id, out held))
            {
                return; // answered elsewhere already (we cancelled the elicitation) or withdrawn
            }

        }

        if (!classifier.HasResult)
        {
            ApprovalLog.ElicitationUnreadable(_logger, "the client answered the elicitation with an error");
            return;
        }

        if (!ApprovalMessages.TryReadElicitationResult(message.Slice(classifier.ResultStart, classifier.ResultLength), out ElicitationAnswer answer))
        {
            ApprovalLog.ElicitationUnreadable(_logger, "the result has no action accept, decline or cancel");
            return;
        }

        _approvals!.Answer(held.Approval.Id, answer.Approve, _clientName, answer.Note, answer.Scope, ApprovalChannel.Elicitation);
    }

    /// <summary>
    /// Reads the client's capabilities from its handshake (<c>initialize</c>, or 2026-07-28's
    /// <c>server/discover</c>): the first request, so only the first few are looked at.
    /// </summary>
    private void ReadInitialize(in ReadOnlySequence<byte> message)
    {
        if (++_requestsBeforeInitialize > 8)
        {
            _initializeSeen = true; // a client that never says is never asked (unless a held call itself says so)
            return;
        }

        ApprovalMessages.ReadClientCapabilities(message, out bool? elicitation, out string? clientName, out bool isHandshake);
        if (isHandshake)
        {
            _initializeSeen = true;
        }

        if (elicitation is { } form)
        {
            _clientElicitation = form;
        }

        if (!string.IsNullOrEmpty(clientName))
        {
            _clientName = clientName;
        }
    }

    private bool IsHeld(in RequestId id)
    {
        lock (_heldGate)
        {
            return _held.ContainsKey(id);
        }
    }

    private bool TryTakeHeld(HeldCall held)
    {
        lock (_heldGate)
        {
            if (!_held.TryGetValue(held.Id, out HeldCall? current) || !ReferenceEquals(current, held))
            {
                return false;
            }

            _held.Remove(held.Id);
            _heldCount = _held.Count;
            return true;
        }
    }

    private List<HeldCall> TakeAllHeld()
    {
        lock (_heldGate)
        {
            var all = new List<HeldCall>(_held.Values);
            _held.Clear();
            _elicitations.Clear();
            _heldCount = 0;
            return all;
        }
    }

    /// <summary>A call held for approval: the client's original bytes (forwarded as they are when approved).</summary>
    private sealed class HeldCall(RequestId id, byte[] message, PendingApproval approval)
    {
        public readonly RequestId Id = id;
        public readonly byte[] Message = message;
        public readonly PendingApproval Approval = approval;
        public RequestId ElicitationId;
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
