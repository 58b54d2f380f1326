using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Where limit counters live. A reservation is taken before a call is forwarded, then committed
/// (the call happened) or rolled back (refund: the call was not made or the policy refunds it).
/// In-memory now (<see cref="MemoryCounterStore"/>); durable and shared stores implement the same
/// contract. Implementations are thread-safe and exact under concurrency.
/// </summary>
public interface ICounterStore
{
    /// <summary>
    /// Admits <see cref="CounterRequest.Amount"/> on every counter of <paramref name="requests"/>,
    /// all or nothing. On refusal nothing is reserved, <paramref name="refusedIndex"/> names the first
    /// request that could not be admitted and <paramref name="retryAfter"/> when it could be
    /// (<see cref="TimeSpan.MaxValue"/> when the amount alone exceeds its max).
    /// </summary>
    bool TryReserve(
        ReadOnlySpan<CounterRequest> requests,
        DateTimeOffset now,
        out CounterReservation reservation,
        out int refusedIndex,
        out TimeSpan retryAfter);

    /// <summary>Makes a reservation final.</summary>
    void Commit(in CounterReservation reservation);

    /// <summary>Returns a reservation's amounts to their counters.</summary>
    void Rollback(in CounterReservation reservation);
}

/// <summary>
/// One counter to charge. The counter's identity is (<see cref="Counter"/>, <see cref="ScopeKey"/>,
/// <see cref="ArgumentKey"/>); its window is the same wherever the counter is used (the validator
/// enforces it).
/// </summary>
/// <param name="Counter">The counter's name.</param>
/// <param name="WindowSeconds">The window's length.</param>
/// <param name="Alignment">Sliding or calendar-aligned.</param>
/// <param name="ScopeKey">The grant, the session id, or empty for a global counter.</param>
/// <param name="ArgumentKey">The argument value a keyed limit counts per, or null.</param>
/// <param name="Amount">How much this call adds (&gt; 0).</param>
/// <param name="Max">The most that may be admitted in any window.</param>
public readonly record struct CounterRequest(
    string Counter,
    long WindowSeconds,
    WindowAlignment Alignment,
    string ScopeKey,
    string? ArgumentKey,
    double Amount,
    double Max);

/// <summary>
/// Reserved counter amounts for one call; default when nothing was reserved.
/// </summary>
/// <param name="Store">The store that holds the reservation (null: nothing reserved).</param>
/// <param name="Id">The store's id for it.</param>
public readonly record struct CounterReservation(ICounterStore? Store, long Id)
{
    /// <summary>Whether anything was reserved.</summary>
    public bool IsEmpty => Store is null;

    /// <summary>Makes the reservation final (no-op when empty).</summary>
    public void Commit() => Store?.Commit(this);

    /// <summary>Refunds the reservation (no-op when empty).</summary>
    public void Rollback() => Store?.Rollback(this);
}
