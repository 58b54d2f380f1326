using System.Buffers;
using System.Diagnostics;
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

/// <summary>What the gateway does with one tools/call.</summary>
/// <param name="Decision">The policy's decision (or the gateway's own refusal).</param>
/// <param name="Forward">Whether the call goes to the upstream (allowed, or shadow mode).</param>
/// <param name="Reason">The reason shown to the client when it is blocked.</param>
internal readonly record struct EnforcedCall(Decision Decision, bool Forward, string Reason);

/// <summary>
/// The decision on a tools/call and the settlement of its outcome, shared by every transport (stdio
/// and Streamable HTTP decide, audit, count and answer exactly alike): fail closed when the audit log
/// is down or the evaluator throws; shadow mode forwards what the policy would block; an allowed
/// call's counter reservation is committed when the upstream answers and rolled back when it cannot.
/// Grant and session are arguments, not state: over HTTP they change from one request to the next.
/// </summary>
internal sealed class ToolCallEnforcer
{
    /// <summary>Rule pointer of a refusal because the audit log cannot be written.</summary>
    public const string AuditUnavailableRule = "gateway:audit-unavailable";

    /// <summary>Rule pointer of a refusal because the evaluator failed.</summary>
    public const string InternalErrorRule = "gateway:internal-error";

    /// <summary>Rule pointer of a refusal because the counter store is unavailable (<c>--state-fail-mode closed</c>, docs/state.md).</summary>
    public const string StateUnavailableRule = "gateway:state-unavailable";

    private const string AuditUnavailableReason = "the gateway cannot write its audit log, so tool calls are refused (fail closed)";
    private const string InternalErrorReason = "the policy could not be evaluated, so the call is refused (fail closed)";
    private const string ApprovalUnavailableSuffix = " (approval required, but approvals are not available in this build: the call is denied)";

    private readonly IPolicyEvaluator _evaluator;
    private readonly AuditLog? _audit;
    private readonly bool _auditFailOpen;
    private readonly ILogger _logger;
    private readonly GatewayMetrics? _metrics;
    private readonly ApprovalBroker? _approvals;

    public ToolCallEnforcer(IPolicyEvaluator evaluator, AuditLog? audit, bool auditFailOpen, ILogger logger, GatewayMetrics? metrics = null, ApprovalBroker? approvals = null)
    {
        _evaluator = evaluator;
        _audit = audit;
        _auditFailOpen = auditFailOpen;
        _logger = logger;
        _metrics = metrics;
        _approvals = approvals;
    }

    /// <summary>The policy.</summary>
    public IPolicyEvaluator Evaluator => _evaluator;

    /// <summary>Where calls that need approval are held; null when approvals are off (they are then denied).</summary>
    public ApprovalBroker? Approvals => _approvals;

    /// <summary>
    /// Decides one tools/call and audits the decision. A blocked call's reservation is already rolled back.
    /// <paramref name="pins"/> is the session's pin state: a pinned tool whose definition changed, or was
    /// not listed yet, is refused before the policy decides (docs/scan.md, "Pinning"); shadow mode checks no pins.
    /// </summary>
    public EnforcedCall Decide(in RequestId id, ReadOnlySpan<byte> name, ReadOnlySpan<byte> arguments, string grant, string session, PinVerifier? pins = null)
    {
        bool shadow = false;
        long started = Stopwatch.GetTimestamp();
        Decision decision;
        if (_audit is not null && !_audit.IsHealthy && !_auditFailOpen)
        {
            GatewayLog.AuditUnavailableRefused(_logger);
            decision = Decision.Deny(AuditUnavailableRule, AuditUnavailableReason);
        }
        else if (pins is not null && !IsShadow() && pins.TryRefuse(_evaluator.Policy.Pins, name, out decision))
        {
            // No counter is taken: the policy never decided.
        }
        else
        {
            shadow = IsShadow();
            decision = Evaluate(new ToolCall(name, arguments, grant, session), reserveOnly: false);
        }

        long decisionNs = ElapsedNanoseconds(started);
        bool forward = decision.Kind == DecisionKind.Allow || (shadow && decision.Rule is not (AuditUnavailableRule or InternalErrorRule));
        _metrics?.RecordDecision(name, decision.Kind, decisionNs);
        if (_logger.IsEnabled(LogLevel.Debug))
        {
            GatewayLog.DecisionMade(_logger, Encoding.UTF8.GetString(name), Encoding.UTF8.GetString(ReplyWriter.DecisionName(decision.Kind)), decision.Rule);
        }

        string reason = decision.Reason ?? string.Empty;
        bool held = false;
        if (decision.Kind == DecisionKind.ApprovalRequired && !forward)
        {
            if (_approvals is null)
            {
                reason += ApprovalUnavailableSuffix;
            }
            else
            {
                held = true; // the transport holds it (docs/approvals.md)
            }
        }

        Record(id, name, arguments, grant, session, decision, forward, held, shadow, decision.Reason is null ? null : reason, decisionNs, approvalId: null);
        if (!forward)
        {
            decision.Reservation.Rollback();
        }

        return new EnforcedCall(decision, forward, reason);
    }

    /// <summary>
    /// A held call was approved: reserves its limits now (<see cref="IPolicyEvaluator.ReserveLimits"/>, so
    /// counters are only taken for a call that is forwarded) and audits the outcome as a decision line
    /// naming the approval. Allow → forward; rate-limited → answer it like any rate-limited call.
    /// </summary>
    public EnforcedCall Release(in RequestId id, ReadOnlySpan<byte> name, ReadOnlySpan<byte> arguments, string grant, string session, string? approvalId)
    {
        long started = Stopwatch.GetTimestamp();
        Decision decision;
        if (_audit is not null && !_audit.IsHealthy && !_auditFailOpen)
        {
            GatewayLog.AuditUnavailableRefused(_logger);
            decision = Decision.Deny(AuditUnavailableRule, AuditUnavailableReason);
        }
        else
        {
            decision = Evaluate(new ToolCall(name, arguments, grant, session), reserveOnly: true);
        }

        bool forward = decision.Kind == DecisionKind.Allow;
        Record(id, name, arguments, grant, session, decision, forward, held: false, shadow: false, decision.Reason, ElapsedNanoseconds(started), approvalId);
        if (!forward)
        {
            decision.Reservation.Rollback();
        }

        string reason = decision.Reason ?? string.Empty;
        return new EnforcedCall(decision, forward, reason);
    }

    /// <summary>
    /// How long a call held by <paramref name="rule"/> waits: the <c>approval.timeout</c> of the entry the
    /// rule belongs to (its pointer starts with the entry's, <c>/tools/KEY</c>), else the policy's top-level
    /// one (key <c>""</c>, the document's pointer), else <see cref="ApprovalBroker.DefaultTimeout"/>.
    /// </summary>
    public TimeSpan ApprovalTimeout(string rule)
    {
        IReadOnlyDictionary<string, long> timeouts;
        try
        {
            timeouts = _evaluator.Policy.ApprovalTimeouts;
        }
        catch (Exception)
        {
            return ApprovalBroker.DefaultTimeout;
        }

        if (timeouts.Count > 0 && rule.StartsWith("/tools/", StringComparison.Ordinal))
        {
            int end = rule.IndexOf('/', "/tools/".Length);
            string entry = end < 0 ? rule : rule[..end];
            if (timeouts.TryGetValue(entry, out long seconds) && seconds > 0)
            {
                return TimeSpan.FromSeconds(seconds);
            }
        }

        if (timeouts.TryGetValue(string.Empty, out long fallback) && fallback > 0)
        {
            return TimeSpan.FromSeconds(fallback);
        }

        return ApprovalBroker.DefaultTimeout;
    }

    /// <summary>
    /// Asks the policy, failing closed: a counter store that refuses (its fail-mode decorator, closed) or an
    /// evaluator that throws denies the call. <paramref name="reserveOnly"/>: an approved call only takes its limits.
    /// </summary>
    private Decision Evaluate(in ToolCall call, bool reserveOnly)
    {
        try
        {
            return reserveOnly ? _evaluator.ReserveLimits(call) : _evaluator.Evaluate(call);
        }
        catch (CounterStoreUnavailableException e)
        {
            // The store's fail-mode decorator decided to refuse (closed); its message is the reason.
            return Decision.Deny(StateUnavailableRule, e.Message + " (--state-fail-mode closed)");
        }
        catch (Exception e)
        {
            GatewayLog.EvaluatorFailed(_logger, e);
            return Decision.Deny(InternalErrorRule, InternalErrorReason);
        }
    }

    /// <summary>The decision line of the audit log (nothing when there is no audit log).</summary>
    private void Record(in RequestId id, ReadOnlySpan<byte> name, ReadOnlySpan<byte> arguments, string grant, string session, in Decision decision, bool forward, bool held, bool shadow, string? reason, long decisionNs, string? approvalId)
    {
        if (_audit is null)
        {
            return;
        }

        var entry = new AuditEntry
        {
            Kind = AuditEntryKind.Decision,
            Time = _audit.Now,
            Session = session,
            Grant = grant,
            Id = id,
            Decision = decision.Kind,
            Forwarded = forward,
            Held = held,
            Shadow = shadow,
            Rule = decision.Rule,
            Reason = reason,
            Counter = decision.Counter,
            RetryAfterSeconds = ReplyWriter.RetryAfterSeconds(decision),
            DecisionNanoseconds = decisionNs,
            ApprovalId = approvalId,
        };
        entry.CaptureCall(name, arguments, !arguments.IsEmpty);
        _audit.Record(ref entry);
    }

    /// <summary>The pending entry of a forwarded call: its reservation, and its name when the outcome is audited.</summary>
    public PendingRequest CreatePending(in EnforcedCall call, ReadOnlySpan<byte> name)
    {
        var pending = new PendingRequest
        {
            Method = KnownMethod.ToolsCall,
            Reservation = call.Decision.Reservation,
            ForwardedAt = Stopwatch.GetTimestamp(),
        };
        if (_audit is not null)
        {
            pending.ToolName = ArrayPool<byte>.Shared.Rent(Math.Max(1, name.Length));
            name.CopyTo(pending.ToolName);
            pending.ToolNameLength = name.Length;
        }

        return pending;
    }

    /// <summary>Ends a forwarded call: commits (answered) or rolls back (never answered) its counters and audits the outcome.</summary>
    public void Settle(ref PendingRequest request, in RequestId id, UpstreamOutcome outcome, bool commit, string grant, string session)
    {
        try
        {
            if (commit)
            {
                request.Reservation.Commit();
            }
            else
            {
                request.Reservation.Rollback();
            }
        }
        catch (Exception e)
        {
            GatewayLog.EvaluatorFailed(_logger, e);
        }

        if (_audit is not null && request.Method == KnownMethod.ToolsCall)
        {
            var entry = new AuditEntry
            {
                Kind = AuditEntryKind.Upstream,
                Time = _audit.Now,
                Session = session,
                Grant = grant,
                Id = id,
                Rule = string.Empty,
                Outcome = outcome,
                LatencyNanoseconds = ElapsedNanoseconds(request.ForwardedAt),
            };
            entry.CaptureCall(request.ToolName is null ? default : request.ToolName.AsSpan(0, request.ToolNameLength), default, hasArguments: false);
            _audit.Record(ref entry);
        }

        request.Release();
    }

    /// <summary>Whether the policy runs in shadow mode (tools/list is then not filtered).</summary>
    public bool IsShadow()
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

    /// <summary>Whether an upstream result needs <see cref="ToolResult.IsError"/> (only the audit log reads it).</summary>
    public bool AuditsOutcomes => _audit is not null;

    internal static long ElapsedNanoseconds(long startTimestamp) =>
        (long)((Stopwatch.GetTimestamp() - startTimestamp) * (1_000_000_000.0 / Stopwatch.Frequency));
}
