using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// The approval part of the HTTP endpoint (docs/approvals.md): a tools/call that needs approval holds
/// its POST until it is answered. When the client can show a form (the elicitation capability, from its
/// initialize or, in 2026-07-28, from the call's own <c>_meta</c>) and accepts an event stream, the POST's
/// answer becomes an SSE stream that first carries the gateway's <c>elicitation/create</c> request
/// (basic/transports#streamable-http: a server may send requests on a POST's stream before the
/// response). The client POSTs its answer back; it is taken here by its gateway-owned id, answered 202
/// and never forwarded. The call's result (the upstream's, or the refusal) then ends that stream.
/// </summary>
internal sealed partial class StreamableHttpProxy
{
    /// <summary>Marks a response whose SSE stream the gateway opened itself (errors then go out as events).</summary>
    private const string OwnEventStreamKey = "policycompiler.approval-stream";

    // Gateway-owned elicitation ids: a per-process random prefix, so they never equal an upstream server's ids.
    // A Guid's random bits, not RandomNumberGenerator: the prefix needs uniqueness, not a key, and the
    // latter would load OpenSSL (libssl + libcrypto, ~4 MB of resident memory) into every HTTP gateway.
    private static readonly string ElicitationIdPrefix = "policycompiler-approval-" + Guid.NewGuid().ToString("N")[..12] + "-";
    private readonly ConcurrentDictionary<RequestId, OpenElicitation> _elicitations = new();
    private long _nextElicitation;

    /// <summary>
    /// Whether a POST may concern approvals and needs <see cref="HandleApprovalTraffic"/>: a response
    /// to one of our elicitations, a cancellation while calls are held, or a handshake without a session.
    /// Cheap: no parsing.
    /// </summary>
    private bool MayBeApprovalTraffic(MessageClassifier classifier, ApprovalBroker broker, string session) => classifier.Kind switch
    {
        MessageKind.Response => classifier.Id.IsStringWithPrefix(ElicitationIdPrefix),
        MessageKind.Notification => classifier.Method == KnownMethod.Cancelled && classifier.CancelledId.HasValue && broker.Count > 0,
        _ => session.Length == 0 && classifier.Method == KnownMethod.Other,
    };

    /// <summary>
    /// Handles what concerns approvals before a POST is forwarded; true when the POST has been answered
    /// (an elicitation answer, or a cancellation of a held call: 202, never forwarded).
    /// </summary>
    private bool HandleApprovalTraffic(HttpContext context, ApprovalBroker broker, ReadOnlySequence<byte> message, MessageClassifier classifier, Exchange exchange)
    {
        switch (classifier.Kind)
        {
            case MessageKind.Response:
                // Ours even when late or unknown (answered elsewhere first): the upstream never asked. Only the
                // session that was asked can answer, or even close, the question: another client guessing the id changes nothing.
                if (_elicitations.TryGetValue(classifier.Id, out OpenElicitation open) && open.Grant == exchange.Grant && open.Session == exchange.Session
                    && _elicitations.TryRemove(new KeyValuePair<RequestId, OpenElicitation>(classifier.Id, open)))
                {
                    if (classifier.HasResult && ApprovalMessages.TryReadElicitationResult(message.Slice(classifier.ResultStart, classifier.ResultLength), out ElicitationAnswer answer))
                    {
                        broker.Answer(open.ApprovalId, answer.Approve, open.ClientName, answer.Note, answer.Scope, ApprovalChannel.Elicitation);
                    }
                    else
                    {
                        ApprovalLog.ElicitationUnreadable(_logger, classifier.HasResult ? "the result has no action accept, decline or cancel" : "the client answered the elicitation with an error");
                    }
                }

                context.Response.StatusCode = StatusCodes.Status202Accepted;
                return true;
            case MessageKind.Notification:
                if (broker.TryWithdrawRequest(exchange.Session, exchange.Grant, classifier.CancelledId))
                {
                    // It cancels a call held here: the upstream never saw that call, so it is not told.
                    context.Response.StatusCode = StatusCodes.Status202Accepted;
                    return true;
                }

                return false;
            default:
                if (Contains(message, "\"initialize\""u8))
                {
                    // Remembered on the session the upstream's answer creates (RelayAsync).
                    ApprovalMessages.ReadClientCapabilities(message, out bool? form, out string? name, out _);
                    exchange.ClientElicitation = form == true;
                    exchange.ClientName = name;
                }

                return false;
        }
    }

    /// <summary>
    /// Holds a call that needs approval until it is answered: null when this method answered the POST
    /// (denied, timed out) or nobody is left to answer (withdrawn); otherwise the call with its limits
    /// reserved (<see cref="ToolCallEnforcer.Release"/>): forward it, or answer it rate-limited. When the
    /// client was asked through elicitation, the response is already an SSE stream (see the class summary).
    /// </summary>
    private async Task<EnforcedCall?> HoldAsync(HttpContext context, ApprovalBroker broker, ReadOnlySequence<byte> message, Exchange exchange, EnforcedCall call, Scratch scratch)
    {
        MessageClassifier classifier = scratch.Classifier;
        ApprovalRequest request = ApprovalBroker.Prepare(exchange.Id, exchange.Grant, exchange.Session, classifier.ToolName, classifier.ArgumentsJson, call.Decision.Rule, call.Reason, _enforcer.ApprovalTimeout(call.Decision.Rule));
        string? approvalId = null;
        if (!broker.TryUseStanding(request))
        {
            PendingApproval? approval = broker.Register(request);
            string? refusal = approval is null ? call.Reason + " (too many calls are waiting for approval, so this one is denied)" : null;
            if (approval is not null)
            {
                RequestId elicitationId = await TryAskClientAsync(context, message, exchange, approval, scratch).ConfigureAwait(false);
                ApprovalOutcome outcome;
                // A client that goes away withdraws its call (nobody is left to answer).
                using (context.RequestAborted.Register(static state => ((PendingApprovalHandle)state!).Withdraw(), new PendingApprovalHandle(broker, approval.Id)))
                {
                    outcome = await approval.Completion.ConfigureAwait(false);
                }

                if (elicitationId.HasValue && _elicitations.TryRemove(elicitationId, out _) && !context.RequestAborted.IsCancellationRequested)
                {
                    // Answered elsewhere (admin API, timeout, cancellation): close the client's form.
                    scratch.Rewritten.ResetWrittenCount();
                    ApprovalMessages.WriteCancelled(scratch.Rewritten, elicitationId, "the approval was answered elsewhere (" + ApprovalBroker.StatusName(outcome.Status) + " via " + ApprovalBroker.ChannelName(outcome.Via) + ")");
                    WriteEvent(scratch.Buffer, scratch.Rewritten.WrittenSpan);
                    await WriteBufferAsync(context, scratch).ConfigureAwait(false);
                }

                if (outcome.Status == ApprovalStatus.Withdrawn)
                {
                    // Cancelled (basic/utilities/cancellation: no answer is due) or the session ended.
                    if (!context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted)
                    {
                        context.Response.StatusCode = StatusCodes.Status202Accepted;
                    }

                    return null;
                }

                if (outcome.Status != ApprovalStatus.Approved)
                {
                    refusal = ApprovalMessages.RefusalReason(approval, outcome);
                }

                approvalId = approval.Id;
            }

            if (refusal is not null)
            {
                Policy.Runtime.Decision denied = Policy.Runtime.Decision.Deny(call.Decision.Rule, refusal);
                if (context.Response.HasStarted)
                {
                    scratch.Rewritten.ResetWrittenCount();
                    scratch.Replies.WriteBlocked(scratch.Rewritten, exchange.Id, classifier.ToolName, denied, refusal);
                    WriteEvent(scratch.Buffer, scratch.Rewritten.WrittenSpan);
                }
                else
                {
                    context.Response.StatusCode = StatusCodes.Status200OK;
                    context.Response.ContentType = "application/json";
                    scratch.Replies.WriteBlocked(scratch.Buffer, exchange.Id, classifier.ToolName, denied, refusal);
                }

                await WriteBufferAsync(context, scratch).ConfigureAwait(false);
                return null;
            }
        }

        EnforcedCall released = _enforcer.Release(exchange.Id, classifier.ToolName, classifier.ArgumentsJson, exchange.Grant, exchange.Session, approvalId);
        if (!released.Forward && context.Response.HasStarted)
        {
            // Rate-limited on release, on our own stream: the refusal goes out as its last event.
            scratch.Rewritten.ResetWrittenCount();
            scratch.Replies.WriteBlocked(scratch.Rewritten, exchange.Id, classifier.ToolName, released.Decision, released.Reason);
            WriteEvent(scratch.Buffer, scratch.Rewritten.WrittenSpan);
            await WriteBufferAsync(context, scratch).ConfigureAwait(false);
            return null;
        }

        return released;
    }

    /// <summary>
    /// Sends the client an <c>elicitation/create</c> for <paramref name="approval"/> on this POST's response,
    /// opened as an SSE stream, when the client can answer one; the elicitation's id, or none.
    /// </summary>
    private async Task<RequestId> TryAskClientAsync(HttpContext context, ReadOnlySequence<byte> message, Exchange exchange, PendingApproval approval, Scratch scratch)
    {
        ApprovalMessages.ReadClientCapabilities(message, out bool? perCall, out string? clientName, out _);
        HttpSession? session = null;
        bool canAsk = perCall ?? (exchange.Session.Length > 0 && _sessions.TryGet(exchange.Session, exchange.Grant, out session) && session!.ClientElicitation);
        bool acceptsEvents = false;
        foreach (string? accept in context.Request.Headers.Accept)
        {
            acceptsEvents |= accept is not null && accept.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase);
        }

        if (!canAsk || !acceptsEvents)
        {
            return default;
        }

        var id = RequestId.FromString(ElicitationIdPrefix + Interlocked.Increment(ref _nextElicitation).ToString(System.Globalization.CultureInfo.InvariantCulture));
        _elicitations[id] = new OpenElicitation(approval.Id, exchange.Grant, exchange.Session, clientName ?? session?.ClientName ?? "the client's user");
        HttpResponse response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        context.Items[OwnEventStreamKey] = true;
        scratch.Rewritten.ResetWrittenCount();
        ApprovalMessages.WriteElicitationRequest(scratch.Rewritten, id, approval);
        WriteEvent(scratch.Buffer, scratch.Rewritten.WrittenSpan);
        await WriteBufferAsync(context, scratch).ConfigureAwait(false);
        await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        return id;
    }

    /// <summary>
    /// One SSE event carrying <paramref name="json"/> as its single data line. Line breaks become spaces:
    /// outside strings they are whitespace, inside a JSON string they cannot appear raw.
    /// </summary>
    private static void WriteEvent(IBufferWriter<byte> output, ReadOnlySpan<byte> json)
    {
        output.Write("event: message\ndata: "u8);
        Span<byte> target = output.GetSpan(json.Length);
        json.CopyTo(target);
        target[..json.Length].Replace((byte)'\n', (byte)' ');
        target[..json.Length].Replace((byte)'\r', (byte)' ');
        output.Advance(json.Length);
        output.Write("\n\n"u8);
    }

    /// <summary>Turns the one JSON message in <paramref name="scratch"/>'s buffer into an event of our own SSE stream.</summary>
    private static void WrapBufferAsEvent(Scratch scratch)
    {
        scratch.Rewritten.ResetWrittenCount();
        scratch.Rewritten.Write(scratch.Buffer.WrittenSpan);
        scratch.Buffer.ResetWrittenCount();
        WriteEvent(scratch.Buffer, scratch.Rewritten.WrittenSpan.TrimEnd("\r\n "u8));
    }

    private static bool Contains(in ReadOnlySequence<byte> message, ReadOnlySpan<byte> value) =>
        message.IsSingleSegment ? message.FirstSpan.IndexOf(value) >= 0 : message.ToArray().AsSpan().IndexOf(value) >= 0;

    /// <summary>What the abort callback of a held POST needs (a static callback: no closure on the request path).</summary>
    private sealed class PendingApprovalHandle(ApprovalBroker broker, string id)
    {
        public void Withdraw() => broker.Withdraw(id, ApprovalChannel.Cancel);
    }

    /// <summary>An elicitation sent on a held POST's stream, waiting for the client's answer (a separate POST).</summary>
    private readonly record struct OpenElicitation(string ApprovalId, string Grant, string Session, string ClientName);
}
