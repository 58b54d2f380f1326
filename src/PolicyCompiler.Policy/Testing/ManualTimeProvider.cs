namespace PolicyCompiler.Policy.Testing;

/// <summary>
/// A clock that moves only when told to, for running policy test cases (call sequences with
/// timestamps) and for tests. Thread-safe. Shipped code cannot use the test-only
/// <c>FakeTimeProvider</c> package, hence this small one.
/// </summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private long _utcTicks;

    /// <summary>Creates a clock showing <paramref name="start"/> (the UTC epoch when absent).</summary>
    public ManualTimeProvider(DateTimeOffset? start = null) =>
        _utcTicks = (start ?? DateTimeOffset.UnixEpoch).UtcTicks;

    /// <summary>The time the clock shows.</summary>
    public DateTimeOffset UtcNow
    {
        get => new(Interlocked.Read(ref _utcTicks), TimeSpan.Zero);
        set => Interlocked.Exchange(ref _utcTicks, value.UtcTicks);
    }

    /// <summary>Moves the clock forward (or back, with a negative span).</summary>
    public void Advance(TimeSpan by) => Interlocked.Add(ref _utcTicks, by.Ticks);

    /// <inheritdoc/>
    public override DateTimeOffset GetUtcNow() => UtcNow;

    /// <inheritdoc/>
    public override long GetTimestamp() => Interlocked.Read(ref _utcTicks);

    /// <inheritdoc/>
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <inheritdoc/>
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
