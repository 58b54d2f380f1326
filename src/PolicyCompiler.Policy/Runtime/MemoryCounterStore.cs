using System.Runtime.CompilerServices;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Counters in process memory: exact sliding windows and calendar windows, thread-safe.
/// </summary>
/// <remarks>
/// <para>
/// A sliding counter keeps every admitted amount with its timestamp in a ring buffer and a running
/// sum; an amount leaves the window at <c>t + window</c> (an entry with <c>t &lt;= now - window</c>
/// is pruned). A call adding <c>a</c> is admitted iff <c>sum + a &lt;= max</c>, so no half-open
/// interval <c>(t - window, t]</c> ever holds more than <c>max</c>. Timestamps are kept
/// non-decreasing per counter (a caller whose clock reading lost a race is treated as arriving at
/// the latest time seen), which keeps the ring sorted and the proof above valid under concurrency.
/// </para>
/// <para>
/// One lock guards the whole store: a call may charge several counters all or nothing, and the
/// critical section is a few dictionary lookups and array writes. Steady state allocates nothing
/// for an admitted call: rings grow by doubling and are reused, reservation records are pooled.
/// Every reservation must be committed or rolled back (the record is held until then).
/// </para>
/// </remarks>
public sealed class MemoryCounterStore : ICounterStore
{
    // Counters whose windows have emptied are swept once the table grows past this, so per-key
    // counters an agent can create at will (one per argument value) do not accumulate forever.
    private const int MinSweepThreshold = 1024;

    // Slots of the recent-counter cache in front of _counters (a power of two).
    private const int RecentSlots = 32;

    private readonly Lock _lock = new();
    private readonly Dictionary<CounterKey, CounterState> _counters = new();
    private readonly RecentCounter[] _recent = new RecentCounter[RecentSlots];
    // Open reservations by slot: a reservation's id is (sequence number << SlotBits) | slot, so Commit and
    // Rollback find the record by index (no dictionary insert and remove per call), and a stale or
    // repeated id is recognised because the record in the slot carries a different one.
    private const int SlotBits = 24;
    private ReservationRecord?[] _open = new ReservationRecord?[8];
    private int[] _freeSlots = [7, 6, 5, 4, 3, 2, 1, 0];
    private int _freeCount = 8;
    private int _openCount;
    private CounterState[] _scratch = new CounterState[4];
    private long _nextReservationId;
    private int _sweepThreshold = MinSweepThreshold;

    /// <summary>How many counters the store holds (for tests and diagnostics).</summary>
    public int CounterCount
    {
        get { lock (_lock) return _counters.Count; }
    }

    /// <summary>How many reservations are neither committed nor rolled back.</summary>
    public int OpenReservationCount
    {
        get { lock (_lock) return _openCount; }
    }

    /// <summary>The amount currently counted in a counter's window at <paramref name="now"/> (0 for an unknown counter).</summary>
    public double GetCount(string counter, string scopeKey, string? argumentKey, DateTimeOffset now)
    {
        lock (_lock)
        {
            if (!_counters.TryGetValue(new CounterKey(counter, scopeKey, argumentKey), out var state)) return 0;
            state.Advance(now.UtcTicks);
            return state.Sum;
        }
    }

    /// <inheritdoc/>
    public bool TryReserve(
        ReadOnlySpan<CounterRequest> requests,
        DateTimeOffset now,
        out CounterReservation reservation,
        out int refusedIndex,
        out TimeSpan retryAfter)
    {
        reservation = default;
        refusedIndex = -1;
        retryAfter = TimeSpan.Zero;
        if (requests.IsEmpty) return true;

        long nowTicks = now.UtcTicks;
        lock (_lock)
        {
            if (_scratch.Length < requests.Length) _scratch = new CounterState[Math.Max(requests.Length, _scratch.Length * 2)];
            CounterState[] states = _scratch;
            try
            {
                // Phase 1: check every counter. Two requests may name the same counter (a `*` limit
                // and a tool limit sharing it), so amounts admitted earlier in this call count as
                // pending against the later ones.
                for (int i = 0; i < requests.Length; i++)
                {
                    ref readonly CounterRequest request = ref requests[i];
                    CounterState state = GetOrCreate(request, nowTicks);
                    states[i] = state;
                    state.Picked = true;
                    long at = state.Advance(nowTicks);
                    if (state.Sum + state.Pending + request.Amount > request.Max)
                    {
                        refusedIndex = i;
                        retryAfter = state.TimeUntilFits(state.Pending + request.Amount, request.Max, at, nowTicks);
                        return false;
                    }
                    state.Pending += request.Amount;
                }

                // Phase 2: everything fits; record the amounts under one reservation id.
                if (_freeCount == 0) GrowSlots();
                int slot = _freeSlots[--_freeCount];
                ReservationRecord record = _open[slot] ??= new ReservationRecord();
                long id = (++_nextReservationId << SlotBits) | (uint)slot;
                record.Id = id;
                for (int i = 0; i < requests.Length; i++)
                {
                    CounterState state = states[i];
                    long entry = state.Add(requests[i].Amount, nowTicks);
                    record.Add(state, entry, requests[i].Amount);
                }
                _openCount++;
                reservation = new CounterReservation(this, id);
                return true;
            }
            finally
            {
                for (int i = 0; i < requests.Length; i++)
                {
                    if (states[i] is { } state)
                    {
                        state.Pending = 0;
                        state.Picked = false;
                    }
                    states[i] = null!;
                }
            }
        }
    }

    /// <inheritdoc/>
    public void Commit(in CounterReservation reservation)
    {
        if (!ReferenceEquals(reservation.Store, this)) return;
        lock (_lock)
        {
            if (Find(reservation.Id) is not { } record) return;
            for (int i = 0; i < record.Count; i++)
            {
                record.States[i].Commit();
            }
            Release(record, reservation.Id);
        }
    }

    /// <inheritdoc/>
    public void Rollback(in CounterReservation reservation)
    {
        if (!ReferenceEquals(reservation.Store, this)) return;
        lock (_lock)
        {
            if (Find(reservation.Id) is not { } record) return;
            for (int i = 0; i < record.Count; i++)
            {
                record.States[i].Refund(record.Entries[i], record.Amounts[i]);
            }
            Release(record, reservation.Id);
        }
    }

    // The open record of a reservation id; null when it was already committed or rolled back.
    private ReservationRecord? Find(long id)
    {
        long slot = id & ((1L << SlotBits) - 1);
        return slot < _open.Length && _open[slot] is { } record && record.Id == id ? record : null;
    }

    // The record stays in its slot (reused by the next reservation there); only its id is retired.
    private void Release(ReservationRecord record, long id)
    {
        record.Clear();
        record.Id = 0;
        _freeSlots[_freeCount++] = (int)(id & ((1L << SlotBits) - 1));
        _openCount--;
    }

    private void GrowSlots()
    {
        int capacity = _open.Length * 2;
        if (capacity > 1 << SlotBits) throw new InvalidOperationException("too many open reservations (every reservation must be committed or rolled back)");
        int old = _open.Length;
        Array.Resize(ref _open, capacity);
        Array.Resize(ref _freeSlots, capacity);
        for (int slot = capacity - 1; slot >= old; slot--)
        {
            _freeSlots[_freeCount++] = slot;
        }
    }

    private CounterState GetOrCreate(in CounterRequest request, long nowTicks)
    {
        // The dictionary hashes three strings per lookup (Marvin, randomised: the session id and the
        // argument key come from the agent), which was the largest single cost of a reservation. The
        // counter name is a constant of the evaluator and the scope key the session's or grant's own
        // string, the same objects call after call: a small cache keyed by their identity answers
        // without hashing their text. The argument key (a new string per call) is compared, not hashed.
        ref RecentCounter recent = ref _recent[
            (RuntimeHelpers.GetHashCode(request.Counter) ^ (RuntimeHelpers.GetHashCode(request.ScopeKey) * 31)) & (RecentSlots - 1)];
        if (ReferenceEquals(recent.Name, request.Counter) && ReferenceEquals(recent.Scope, request.ScopeKey)
            && string.Equals(recent.Argument, request.ArgumentKey, StringComparison.Ordinal))
        {
            return recent.State!;
        }

        var key = new CounterKey(request.Counter, request.ScopeKey, request.ArgumentKey);
        if (!_counters.TryGetValue(key, out var state))
        {
            if (_counters.Count >= _sweepThreshold) Sweep(nowTicks);
            state = new CounterState(request.WindowSeconds, request.Alignment);
            _counters.Add(key, state);
        }

        // Only Sweep removes counters, and it empties the cache: a cached state is always the one
        // the dictionary holds for its key.
        recent = new RecentCounter(request.Counter, request.ScopeKey, request.ArgumentKey, state);
        return state;
    }

    private void Sweep(long nowTicks)
    {
        Array.Clear(_recent);
        foreach (var (key, state) in _counters)
        {
            state.Advance(nowTicks);
            // A counter with nothing in its window behaves exactly like a new one, unless an open
            // reservation still points at it (a rollback must find the same object), or the
            // reservation in progress has already picked it.
            if (state.IsEmpty && state.OpenReferences == 0 && !state.Picked) _counters.Remove(key);
        }
        _sweepThreshold = Math.Max(MinSweepThreshold, _counters.Count * 2);
    }

    private readonly record struct CounterKey(string Name, string Scope, string? Argument);

    /// <summary>A counter found recently, by the identity of its name and scope strings.</summary>
    private readonly record struct RecentCounter(string? Name, string? Scope, string? Argument, CounterState? State);

    /// <summary>One counter's window. Guarded by the store's lock.</summary>
    private sealed class CounterState
    {
        private readonly long _windowTicks;
        private readonly bool _calendar;

        // Sliding: a ring of (timestamp, amount); entry number n lives at n % capacity while
        // _head <= n < _tail. Entry numbers identify entries for a rollback. The capacity is a power
        // of two (4, doubled by Grow), so n % capacity is n & (capacity - 1): no division per access.
        private long[] _times = new long[4];
        private double[] _amounts = new double[4];
        private long _head;
        private long _tail;
        private long _latest = long.MinValue;

        // Calendar: the current window's index.
        private long _windowIndex = long.MinValue;

        public CounterState(long windowSeconds, WindowAlignment alignment)
        {
            _windowTicks = Math.Max(1, windowSeconds) * TimeSpan.TicksPerSecond;
            _calendar = alignment == WindowAlignment.Calendar;
        }

        public double Sum { get; private set; }

        /// <summary>Amount admitted earlier in the current TryReserve (reset before the lock is released).</summary>
        public double Pending { get; set; }

        /// <summary>Whether the TryReserve in progress uses this counter (a sweep must keep it).</summary>
        public bool Picked { get; set; }

        /// <summary>Reservations not yet committed or rolled back that hold entries of this counter.</summary>
        public int OpenReferences { get; set; }

        public bool IsEmpty => _calendar ? Sum == 0 : _head == _tail;

        /// <summary>Prunes what left the window at <paramref name="nowTicks"/>; returns the effective time (never earlier than the latest entry).</summary>
        public long Advance(long nowTicks)
        {
            if (_calendar)
            {
                long index = FloorDiv(nowTicks - DateTimeOffset.UnixEpoch.UtcTicks, _windowTicks);
                if (index > _windowIndex)
                {
                    _windowIndex = index;
                    Sum = 0;
                }
                return nowTicks;
            }

            long at = Math.Max(nowTicks, _latest);
            long cutoff = at - _windowTicks;
            while (_head < _tail && _times[_head & (_times.Length - 1)] <= cutoff)
            {
                Sum -= _amounts[_head & (_amounts.Length - 1)];
                _head++;
            }
            // Refunds and removals in floating point can leave dust; an empty window is exactly zero.
            if (_head == _tail) Sum = 0;
            return at;
        }

        /// <summary>How long until <paramref name="amount"/> more would fit under <paramref name="max"/>, if nothing else is admitted.</summary>
        public TimeSpan TimeUntilFits(double amount, double max, long at, long nowTicks)
        {
            if (amount > max) return TimeSpan.MaxValue;
            if (_calendar)
            {
                long windowEnd = (_windowIndex + 1) * _windowTicks + DateTimeOffset.UnixEpoch.UtcTicks;
                return TimeSpan.FromTicks(windowEnd - nowTicks);
            }
            // The oldest entries leave first, each at its timestamp + window.
            double excess = Sum + amount - max;
            for (long n = _head; n < _tail; n++)
            {
                excess -= _amounts[n & (_amounts.Length - 1)];
                if (excess <= 0)
                {
                    return TimeSpan.FromTicks(Math.Max(0, _times[n & (_times.Length - 1)] + _windowTicks - nowTicks));
                }
            }
            // Only reachable when the excess is pending in this very call; that frees when the call's own entries would.
            return TimeSpan.FromTicks(Math.Max(0, at + _windowTicks - nowTicks));
        }

        /// <summary>Admits <paramref name="amount"/>; returns the entry's number (calendar: the window index).</summary>
        public long Add(double amount, long nowTicks)
        {
            Sum += amount;
            OpenReferences++;
            if (_calendar) return _windowIndex;

            if (_tail - _head == _times.Length) Grow();
            long at = Math.Max(nowTicks, _latest);
            _latest = at;
            long n = _tail++;
            _times[n & (_times.Length - 1)] = at;
            _amounts[n & (_amounts.Length - 1)] = amount;
            return n;
        }

        /// <summary>Returns an entry's amount, if it is still inside the window.</summary>
        public void Refund(long entry, double amount)
        {
            OpenReferences--;
            if (_calendar)
            {
                if (entry == _windowIndex) Sum = Math.Max(0, Sum - amount);
                return;
            }
            if (entry < _head || entry >= _tail) return; // already left the window
            // The entry stays in the ring with nothing in it: order and numbering stay intact.
            _amounts[entry & (_amounts.Length - 1)] = 0;
            Sum -= amount;
            if (Sum < 0) Sum = 0;
        }

        public void Commit() => OpenReferences--;

        private void Grow()
        {
            int capacity = _times.Length * 2;
            var times = new long[capacity];
            var amounts = new double[capacity];
            for (long n = _head; n < _tail; n++)
            {
                times[n & (capacity - 1)] = _times[n & (_times.Length - 1)];
                amounts[n & (capacity - 1)] = _amounts[n & (_amounts.Length - 1)];
            }
            _times = times;
            _amounts = amounts;
        }

        private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);
    }

    /// <summary>The entries one reservation made; pooled.</summary>
    private sealed class ReservationRecord
    {
        public CounterState[] States = new CounterState[2];
        public long[] Entries = new long[2];
        public double[] Amounts = new double[2];
        public int Count;
        public long Id; // of the open reservation it holds; 0 when free

        public void Add(CounterState state, long entry, double amount)
        {
            if (Count == States.Length)
            {
                Array.Resize(ref States, Count * 2);
                Array.Resize(ref Entries, Count * 2);
                Array.Resize(ref Amounts, Count * 2);
            }
            States[Count] = state;
            Entries[Count] = entry;
            Amounts[Count] = amount;
            Count++;
        }

        public void Clear()
        {
            // One or two entries, typically: a loop beats Array.Clear's call.
            for (int i = 0; i < Count; i++) States[i] = null!;
            Count = 0;
        }
    }
}
