using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Decides tool calls. Implemented by the reference interpreter
/// (<see cref="Interpretation.PolicyInterpreter"/>) and by every evaluator the source generator
/// compiles from a policy file; the two must give identical decisions, rule pointers and counter
/// effects for every call (tests/PolicyCompiler.Generators.Tests proves it by property tests).
/// Implementations are thread-safe.
/// </summary>
public interface IPolicyEvaluator
{
    /// <summary>What the evaluator enforces: the policy's name, hash, mode and text.</summary>
    PolicyInfo Policy { get; }

    /// <summary>
    /// Decides <paramref name="call"/>. An allow decision has already reserved every limit that
    /// applies (commit or roll it back through <see cref="Decision.Reservation"/>); an
    /// approval-required decision reserves nothing (see <see cref="ReserveLimits"/>).
    /// </summary>
    Decision Evaluate(in ToolCall call);

    /// <summary>
    /// Reserves the limits of a call that an approval let through: returns allow (with the
    /// reservation) or rate-limited. Used by the approvals flow; counters are only taken when a call
    /// is actually forwarded.
    /// </summary>
    Decision ReserveLimits(in ToolCall call);

    /// <summary>
    /// Whether a tool appears in <c>tools/list</c>: false for hidden tools and for tools that
    /// every call would deny whatever its arguments (a deny entry, or the default deny, with no rule
    /// that could allow or ask for approval).
    /// </summary>
    bool IsListed(ReadOnlySpan<byte> toolNameUtf8);
}

/// <summary>What an evaluator enforces.</summary>
/// <param name="Name">The policy's name.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the policy file's UTF-8 bytes without a leading byte-order mark (docs/policy-language.md, "Policy hash").</param>
/// <param name="Mode">Enforce or shadow.</param>
/// <param name="SourceText">The policy file's text.</param>
public sealed record PolicyInfo(string Name, string Sha256, PolicyMode Mode, string SourceText)
{
    private static readonly IReadOnlyDictionary<string, string> NoPins = new Dictionary<string, string>(StringComparer.Ordinal);
    private static readonly IReadOnlyDictionary<string, long> NoApprovalTimeouts = new Dictionary<string, long>(StringComparer.Ordinal);

    /// <summary>
    /// The pinned tool definitions: exact tool name → <c>sha256:…</c> (<see cref="ToolDefinitionPin"/>),
    /// from the <c>pin</c> of each exact-name entry; empty when the policy pins nothing. The gateway
    /// checks every listed definition against it and refuses calls to a pinned tool whose definition
    /// changed or was not verified in the session (docs/scan.md, "Pinning"). Ordinal keys.
    /// </summary>
    public IReadOnlyDictionary<string, string> Pins { get; init; } = NoPins;

    /// <summary>
    /// The approval timeouts written in the policy: entry pointer (<c>/tools/KEY</c>, JSON-pointer escaped,
    /// as in a decision's rule) → seconds, from each entry's <c>approval.timeout</c>; empty when none is
    /// written. A call held for approval by a rule of that entry (or by its action) waits this long for an
    /// answer; otherwise the gateway's default (docs/approvals.md). Ordinal keys.
    /// </summary>
    public IReadOnlyDictionary<string, long> ApprovalTimeouts { get; init; } = NoApprovalTimeouts;

    /// <summary>Value equality, the pins compared by content (the interpreter and a compiled evaluator build their own tables).</summary>
    public bool Equals(PolicyInfo? other)
    {
        if (other is null || Name != other.Name || Sha256 != other.Sha256 || Mode != other.Mode || SourceText != other.SourceText || Pins.Count != other.Pins.Count)
        {
            return false;
        }
        foreach (KeyValuePair<string, string> pin in Pins)
        {
            if (!other.Pins.TryGetValue(pin.Key, out string? value) || value != pin.Value)
            {
                return false;
            }
        }
        if (ApprovalTimeouts.Count != other.ApprovalTimeouts.Count)
        {
            return false;
        }
        foreach (KeyValuePair<string, long> timeout in ApprovalTimeouts)
        {
            if (!other.ApprovalTimeouts.TryGetValue(timeout.Key, out long seconds) || seconds != timeout.Value)
            {
                return false;
            }
        }
        return true;
    }

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Sha256, Mode, SourceText, Pins.Count);
}

/// <summary>Services an evaluator uses: the clock, the counter store and the regex timeout.</summary>
public sealed class PolicyEvaluatorOptions
{
    /// <summary>The clock for limits. Tests inject a fake one.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Where counters live (in memory unless a durable store is given).</summary>
    public ICounterStore Counters { get; init; } = new MemoryCounterStore();

    /// <summary>Longest a regex condition may run before it counts as Unknown (fail closed).</summary>
    public TimeSpan RegexTimeout { get; init; } = TimeSpan.FromMilliseconds(100);
}
