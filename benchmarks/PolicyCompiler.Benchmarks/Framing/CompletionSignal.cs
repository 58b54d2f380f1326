using System.Threading.Tasks.Sources;

namespace PolicyCompiler.Benchmarks.Framing;

/// <summary>
/// A reusable awaitable that one thread completes and another awaits, allocating nothing per use
/// (a <see cref="TaskCompletionSource"/> per batch would be counted as the gateway's allocation).
/// </summary>
public sealed class CompletionSignal : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

    /// <summary>Arms the signal; call before starting the work that completes it.</summary>
    public void Reset() => _core.Reset();

    /// <summary>Completes the current wait.</summary>
    public void Set() => _core.SetResult(true);

    /// <summary>Waits for <see cref="Set"/>.</summary>
    public ValueTask WaitAsync() => new(this, _core.Version);

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
