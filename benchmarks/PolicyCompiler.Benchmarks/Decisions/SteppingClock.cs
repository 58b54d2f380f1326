namespace PolicyCompiler.Benchmarks.Decisions;

/// <summary>
/// A clock that moves forward by a fixed step every time it is read, so counters reach a steady
/// state: with a step longer than every window the benchmarked calls use, each reservation prunes
/// the previous one and a limit never fills up (a real clock would refuse after <c>max</c> calls and
/// then measure the rate-limited path instead). A zero step is a frozen clock.
/// </summary>
public sealed class SteppingClock : TimeProvider
{
    private readonly long _stepTicks;
    private long _nowTicks;

    /// <summary>Starts at <paramref name="start"/> and advances <paramref name="step"/> per read.</summary>
    public SteppingClock(DateTimeOffset start, TimeSpan step)
    {
        _nowTicks = start.UtcTicks;
        _stepTicks = step.Ticks;
    }

    /// <inheritdoc/>
    public override DateTimeOffset GetUtcNow()
    {
        // Single-threaded benchmarks; no interlocked needed. Starting in 2001 with a 61 s step leaves
        // room for billions of reads before DateTimeOffset.MaxValue.
        long now = _nowTicks;
        _nowTicks = now + _stepTicks;
        return new DateTimeOffset(now, TimeSpan.Zero);
    }
}
