using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Tests.Runtime;

/// <summary>
/// What only the in-memory store has (scale of parallelism, zero allocation, sweeping). The window,
/// reservation and concurrency semantics every store shares are one contract suite run against memory,
/// SQLite and Redis: tests/PolicyCompiler.State.Tests/CounterStoreContract.cs.
/// </summary>
public class MemoryCounterStoreTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static CounterRequest Rate(double max, long window = 60, double amount = 1, string scope = "g", string? key = null, string name = "c", WindowAlignment align = WindowAlignment.Sliding) =>
        new(name, window, align, scope, key, amount, max);

    private static bool Reserve(MemoryCounterStore store, DateTimeOffset at, out TimeSpan retryAfter, params CounterRequest[] requests) =>
        store.TryReserve(requests, at, out _, out _, out retryAfter);

    [Fact]
    public void A_thousand_parallel_calls_against_max_100_admit_exactly_100()
    {
        var store = new MemoryCounterStore();
        int admitted = 0;
        Parallel.For(0, 1000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            if (store.TryReserve([Rate(max: 100), Rate(max: 1000, name: "global", scope: "")], T0.AddTicks(i % 7), out var r, out _, out _))
            {
                Interlocked.Increment(ref admitted);
                r.Commit();
            }
        });
        Assert.Equal(100, admitted);
        Assert.Equal(100, store.GetCount("global", "", null, T0.AddSeconds(1)));
    }

    [Fact]
    public void Steady_state_admission_allocates_nothing()
    {
        var store = new MemoryCounterStore();
        CounterRequest[] requests = [Rate(max: 1000, window: 1), Rate(max: 5000, window: 2, name: "d", scope: "")];
        var now = T0;
        // Warm up past one full window so the rings have reached their working size.
        for (int i = 0; i < 3000; i++)
        {
            store.TryReserve(requests, now, out var r, out _, out _);
            r.Commit();
            now = now.AddMilliseconds(1);
        }
        int admitted = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 2000; i++)
        {
            if (store.TryReserve(requests, now, out var r, out _, out _)) admitted++;
            if ((i & 1) == 0) r.Commit(); else r.Rollback();
            now = now.AddMilliseconds(1);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(2000, admitted);
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Counters_whose_windows_emptied_are_swept()
    {
        var store = new MemoryCounterStore();
        for (int i = 0; i < 5000; i++)
        {
            Assert.True(store.TryReserve([Rate(max: 1, window: 1, key: i.ToString())], T0.AddSeconds(i), out var r, out _, out _));
            r.Commit();
        }
        Assert.True(store.CounterCount < 2100, $"{store.CounterCount} counters kept");
        // A counter still in its window is never swept.
        Assert.False(Reserve(store, T0.AddSeconds(4999.5), out _, Rate(max: 1, window: 1, key: "4999")));
    }

    [Fact]
    public void Many_open_reservations_each_settle_once_and_only_their_own_amounts()
    {
        // More open reservations than the store's initial slots, settled out of order; a second
        // commit or rollback of the same reservation (or one of a reused slot) changes nothing.
        var store = new MemoryCounterStore();
        var open = new List<CounterReservation>();
        for (int i = 0; i < 40; i++)
        {
            Assert.True(store.TryReserve([Rate(max: 100, amount: 1 + (i % 3))], T0, out var r, out _, out _));
            open.Add(r);
        }
        Assert.Equal(40, store.OpenReservationCount);
        double expected = open.Select((_, i) => 1.0 + (i % 3)).Sum();
        for (int i = 0; i < open.Count; i += 2)
        {
            open[i].Rollback();
            expected -= 1 + (i % 3);
        }
        for (int i = 1; i < open.Count; i += 2) open[i].Commit();
        Assert.Equal(0, store.OpenReservationCount);
        Assert.Equal(expected, store.GetCount("c", "g", null, T0));

        // Stale handles: their slots now hold newer reservations, which they must not touch.
        Assert.True(store.TryReserve([Rate(max: 100, amount: 5)], T0, out var fresh, out _, out _));
        foreach (var stale in open)
        {
            stale.Rollback();
            stale.Commit();
        }
        Assert.Equal(1, store.OpenReservationCount);
        Assert.Equal(expected + 5, store.GetCount("c", "g", null, T0));
        fresh.Rollback();
        Assert.Equal(expected, store.GetCount("c", "g", null, T0));
    }

    [Fact]
    public void A_swept_counter_found_again_through_the_same_strings_starts_afresh()
    {
        // The recent-counter cache keys on the identity of the name and scope strings: a sweep must
        // not leave it pointing at a counter the store no longer holds.
        var store = new MemoryCounterStore();
        string scope = new('s', 3);
        Assert.True(store.TryReserve([Rate(max: 1, window: 1, scope: scope)], T0, out var first, out _, out _));
        first.Commit();
        for (int i = 0; i < 3000; i++) // enough new counters, seconds later, to sweep the first one
        {
            Assert.True(store.TryReserve([Rate(max: 1, window: 1, key: i.ToString())], T0.AddSeconds(10 + i), out var r, out _, out _));
            r.Commit();
        }
        DateTimeOffset later = T0.AddSeconds(5000);
        Assert.True(store.TryReserve([Rate(max: 1, window: 1, scope: scope)], later, out var again, out _, out _));
        again.Commit();
        Assert.Equal(1, store.GetCount("c", scope, null, later));
        Assert.False(store.TryReserve([Rate(max: 1, window: 1, scope: scope)], later, out _, out _, out _));
    }

    private sealed record Step(int DelayMs, int Amount, bool Rollback);

}
