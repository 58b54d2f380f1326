using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Enforcement;

/// <summary>
/// An evaluator whose policy can be replaced while the gateway runs (<c>policyc run --watch</c>).
/// Every call is decided by one policy, whichever was current when it arrived. Counters survive a
/// reload because every evaluator is created with the same <see cref="ICounterStore"/>; reservations
/// taken by an old evaluator are committed or rolled back through that same store.
/// </summary>
public sealed class ReloadableEvaluator : IPolicyEvaluator
{
    private volatile IPolicyEvaluator _current;

    /// <summary>Starts with <paramref name="initial"/>.</summary>
    public ReloadableEvaluator(IPolicyEvaluator initial) => _current = initial ?? throw new ArgumentNullException(nameof(initial));

    /// <summary>The evaluator deciding now.</summary>
    public IPolicyEvaluator Current => _current;

    /// <summary>Makes <paramref name="next"/> decide every call from now on.</summary>
    public void Replace(IPolicyEvaluator next) => _current = next ?? throw new ArgumentNullException(nameof(next));

    /// <inheritdoc/>
    public PolicyInfo Policy => _current.Policy;

    /// <inheritdoc/>
    public Decision Evaluate(in ToolCall call) => _current.Evaluate(call);

    /// <inheritdoc/>
    public Decision ReserveLimits(in ToolCall call) => _current.ReserveLimits(call);

    /// <inheritdoc/>
    public bool IsListed(ReadOnlySpan<byte> toolNameUtf8) => _current.IsListed(toolNameUtf8);
}
