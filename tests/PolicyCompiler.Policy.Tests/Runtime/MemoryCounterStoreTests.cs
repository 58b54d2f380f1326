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

    private sealed record Step(int DelayMs, int Amount, bool Rollback);

}
