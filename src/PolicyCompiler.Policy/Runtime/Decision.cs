namespace PolicyCompiler.Policy.Runtime;

/// <summary>The outcome of evaluating a tool call.</summary>
public enum DecisionKind : byte
{
    /// <summary>Forward the call.</summary>
    Allow,
    /// <summary>Refuse the call; <see cref="Decision.Reason"/> says why.</summary>
    Deny,
    /// <summary>A limit refused the call; <see cref="Decision.Counter"/> and <see cref="Decision.RetryAfter"/> say which and when.</summary>
    RateLimited,
    /// <summary>A human must approve the call first.</summary>
    ApprovalRequired,
}

/// <summary>
/// A decision, naming the rule that made it as a JSON pointer into the policy file
/// (e.g. <c>/tools/CreateCodeConnection/limits/0</c>, <c>/default</c>). Every string in it is a
/// constant of the evaluator, so building a decision allocates nothing. <see cref="Allow"/> and
/// <see cref="Deny"/> are inlined: otherwise the generated evaluators tail-call them, and the call is
/// a tenth of an exact-name decision (docs/performance.md).
/// </summary>
public readonly struct Decision
{
    private Decision(DecisionKind kind, string rule, string? reason, string? counter, TimeSpan retryAfter, CounterReservation reservation)
    {
        Kind = kind;
        Rule = rule;
        Reason = reason;
        Counter = counter;
        RetryAfter = retryAfter;
        Reservation = reservation;
    }

    /// <summary>Allow, deny, rate-limited or approval-required.</summary>
    public DecisionKind Kind { get; }

    /// <summary>JSON pointer of the rule that decided.</summary>
    public string Rule { get; }

    /// <summary>The reason shown to the agent (null for a plain allow).</summary>
    public string? Reason { get; }

    /// <summary>The counter that refused the call (rate-limited only).</summary>
    public string? Counter { get; }

    /// <summary>When a slot frees (rate-limited only); <see cref="TimeSpan.MaxValue"/> when never (the call alone exceeds max).</summary>
    public TimeSpan RetryAfter { get; }

    /// <summary>The counters reserved for an allowed call; commit after forwarding or roll back to refund.</summary>
    public CounterReservation Reservation { get; }

    /// <summary>An allow decision.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static Decision Allow(string rule, CounterReservation reservation = default) =>
        new(DecisionKind.Allow, rule, null, null, TimeSpan.Zero, reservation);

    /// <summary>A deny decision.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static Decision Deny(string rule, string reason) =>
        new(DecisionKind.Deny, rule, reason, null, TimeSpan.Zero, default);

    /// <summary>A rate-limited decision.</summary>
    public static Decision RateLimited(string rule, string reason, string counter, TimeSpan retryAfter) =>
        new(DecisionKind.RateLimited, rule, reason, counter, retryAfter, default);

    /// <summary>An approval-required decision.</summary>
    public static Decision ApprovalRequired(string rule, string reason) =>
        new(DecisionKind.ApprovalRequired, rule, reason, null, TimeSpan.Zero, default);

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        DecisionKind.Allow => $"allow ({Rule})",
        DecisionKind.RateLimited => $"rate_limited ({Rule}): {Reason}; counter {Counter}, retry after {RetryAfter}",
        DecisionKind.ApprovalRequired => $"approval_required ({Rule}): {Reason}",
        _ => $"deny ({Rule}): {Reason}",
    };
}
