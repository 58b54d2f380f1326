namespace PolicyCompiler.Policy.Runtime;

/// <summary>Counters in process memory: exact sliding windows, thread-safe. (Contract stub; runtime work implements it.)</summary>
public sealed class MemoryCounterStore : ICounterStore
{
    /// <inheritdoc/>
    public bool TryReserve(ReadOnlySpan<CounterRequest> requests, DateTimeOffset now, out CounterReservation reservation, out int refusedIndex, out TimeSpan retryAfter)
        => throw new NotImplementedException("contract: runtime work");

    /// <inheritdoc/>
    public void Commit(in CounterReservation reservation) => throw new NotImplementedException("contract: runtime work");

    /// <inheritdoc/>
    public void Rollback(in CounterReservation reservation) => throw new NotImplementedException("contract: runtime work");
}
