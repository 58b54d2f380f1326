using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.State.Resilience;

/// <summary>What a gateway does with a call that needs a counter while the store is unavailable.</summary>
public enum StateFailMode
{
    /// <summary>Refuse the call (the default): a limit that cannot be checked is not granted.</summary>
    Closed,

    /// <summary>Admit the call uncounted: availability over the limit.</summary>
    Open,
}

/// <summary>
/// Applies <c>--state-fail-mode</c> around a durable or shared store, so that neither the evaluators nor
/// the proxy know about stores that can fail.
/// </summary>
/// <remarks>
/// The inner store bounds each call's latency by its timeout and reports an unreachable, failing or slow
/// store as <see cref="CounterStoreUnavailableException"/>. Here that becomes: <b>closed</b>, the exception
/// goes on to the gateway, which denies the call with its message as the reason (no counter was taken);
/// <b>open</b>, the call is admitted with an empty reservation (nothing counted, nothing to refund).
/// Every call tries the store again, so service resumes with the first call after the store is back.
/// A commit or rollback that fails is logged and dropped: a refund that could not be made leaves the
/// amount counted until its window ends (the safe side). Outages are logged once when they start and
/// once when they end, not once per call.
/// </remarks>
public sealed partial class FailModeCounterStore : ICounterStore, IDisposable
{
    private readonly ICounterStore _inner;
    private readonly ILogger _logger;
    private int _failing;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The store (SQLite, Redis...).</param>
    /// <param name="mode">Closed or open.</param>
    /// <param name="logger">Where outages and recoveries are logged.</param>
    public FailModeCounterStore(ICounterStore inner, StateFailMode mode, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        Mode = mode;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The fail mode.</summary>
    public StateFailMode Mode { get; }

    /// <summary>The wrapped store.</summary>
    public ICounterStore Inner => _inner;

    /// <summary>Whether the last call to the store failed.</summary>
    public bool IsFailing => Volatile.Read(ref _failing) != 0;

    /// <summary>How many calls were admitted uncounted (open mode) since the start.</summary>
    public long AdmittedUncounted => Interlocked.Read(ref _admittedUncounted);

    private long _admittedUncounted;

    /// <inheritdoc/>
    public bool TryReserve(
        ReadOnlySpan<CounterRequest> requests,
        DateTimeOffset now,
        out CounterReservation reservation,
        out int refusedIndex,
        out TimeSpan retryAfter)
    {
        try
        {
            bool admitted = _inner.TryReserve(requests, now, out CounterReservation inner, out refusedIndex, out retryAfter);
            if (Interlocked.Exchange(ref _failing, 0) != 0)
            {
                Recovered(_logger);
            }

            // The reservation must come back here: the gateway settles it through the reservation's store.
            reservation = inner.IsEmpty ? default : new CounterReservation(this, inner.Id);
            return admitted;
        }
        catch (CounterStoreUnavailableException e)
        {
            if (Interlocked.Exchange(ref _failing, 1) == 0)
            {
                Unavailable(_logger, Mode == StateFailMode.Closed ? "refused" : "admitted uncounted", e.Message);
            }

            if (Mode == StateFailMode.Closed)
            {
                throw;
            }

            Interlocked.Increment(ref _admittedUncounted);
            reservation = default;
            refusedIndex = -1;
            retryAfter = TimeSpan.Zero;
            return true;
        }
    }

    /// <inheritdoc/>
    public void Commit(in CounterReservation reservation)
    {
        if (!ReferenceEquals(reservation.Store, this))
        {
            return;
        }

        try
        {
            _inner.Commit(new CounterReservation(_inner, reservation.Id));
        }
        catch (CounterStoreUnavailableException e)
        {
            SettleFailed(_logger, "commit", e.Message);
        }
    }

    /// <inheritdoc/>
    public void Rollback(in CounterReservation reservation)
    {
        if (!ReferenceEquals(reservation.Store, this))
        {
            return;
        }

        try
        {
            _inner.Rollback(new CounterReservation(_inner, reservation.Id));
        }
        catch (CounterStoreUnavailableException e)
        {
            SettleFailed(_logger, "refund", e.Message);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => (_inner as IDisposable)?.Dispose();

    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Counter store unavailable; calls that need a counter are {Outcome} until it is back: {Reason}")]
    private static partial void Unavailable(ILogger logger, string outcome, string reason);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "Counter store available again")]
    private static partial void Recovered(ILogger logger);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Counter store {Operation} failed; the amounts stay counted until their window ends: {Reason}")]
    private static partial void SettleFailed(ILogger logger, string operation, string reason);
}
