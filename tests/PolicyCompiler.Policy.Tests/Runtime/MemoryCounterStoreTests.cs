using CsCheck;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Tests.Runtime;

public class MemoryCounterStoreTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static CounterRequest Rate(double max, long window = 60, double amount = 1, string scope = "g", string? key = null, string name = "c", WindowAlignment align = WindowAlignment.Sliding) =>
        new(name, window, align, scope, key, amount, max);

    private static bool Reserve(MemoryCounterStore store, DateTimeOffset at, out TimeSpan retryAfter, params CounterRequest[] requests) =>
        store.TryReserve(requests, at, out _, out _, out retryAfter);

    [Fact]
    public void Exactly_max_fit_in_a_window_and_the_next_is_admitted_exactly_when_the_oldest_leaves()
    {
        var store = new MemoryCounterStore();
        var limit = Rate(max: 3);
        Assert.True(Reserve(store, T0, out _, limit));
        Assert.True(Reserve(store, T0.AddSeconds(10), out _, limit));
        Assert.True(Reserve(store, T0.AddSeconds(20), out _, limit));

        Assert.False(Reserve(store, T0.AddSeconds(30), out var retry, limit));
        Assert.Equal(TimeSpan.FromSeconds(30), retry);
        Assert.False(Reserve(store, T0.AddSeconds(60).AddTicks(-1), out retry, limit));
        Assert.Equal(TimeSpan.FromTicks(1), retry);

        Assert.True(Reserve(store, T0.AddSeconds(60), out _, limit));
        Assert.False(Reserve(store, T0.AddSeconds(60), out retry, limit));
        Assert.Equal(TimeSpan.FromSeconds(10), retry);
    }

    [Fact]
    public void An_amount_larger_than_max_is_never_admitted()
    {
        var store = new MemoryCounterStore();
        Assert.False(store.TryReserve([Rate(max: 5, amount: 6)], T0, out var reservation, out int refused, out var retry));
        Assert.Equal(0, refused);
        Assert.Equal(TimeSpan.MaxValue, retry);
        Assert.True(reservation.IsEmpty);
        Assert.True(Reserve(store, T0, out _, Rate(max: 5, amount: 5)));
    }

    [Fact]
    public void Amounts_add_up_and_retry_waits_for_enough_to_leave()
    {
        var store = new MemoryCounterStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 10, amount: 4)));
        Assert.True(Reserve(store, T0.AddSeconds(5), out _, Rate(max: 10, amount: 4)));
        // 8 counted; 5 more needs 3 freed: the first entry (4) leaving at 60s is enough.
        Assert.False(Reserve(store, T0.AddSeconds(6), out var retry, Rate(max: 10, amount: 5)));
        Assert.Equal(TimeSpan.FromSeconds(54), retry);
        // 9 more needs 7 freed: both entries, the second leaves at 65s.
        Assert.False(Reserve(store, T0.AddSeconds(6), out retry, Rate(max: 10, amount: 9)));
        Assert.Equal(TimeSpan.FromSeconds(59), retry);
        Assert.True(Reserve(store, T0.AddSeconds(6), out _, Rate(max: 10, amount: 2)));
    }

    [Fact]
    public void Calendar_windows_reset_at_the_boundary()
    {
        var store = new MemoryCounterStore();
        var limit = Rate(max: 2, align: WindowAlignment.Calendar);
        var start = T0.AddSeconds(30);
        Assert.True(Reserve(store, start, out _, limit));
        Assert.True(Reserve(store, start.AddSeconds(29), out _, limit));
        Assert.False(Reserve(store, start.AddSeconds(29.5), out var retry, limit));
        Assert.Equal(TimeSpan.FromSeconds(0.5), retry);
        // A new UTC minute: the window is empty again (a sliding window would still be full).
        Assert.True(Reserve(store, start.AddSeconds(30), out _, limit));
        Assert.True(Reserve(store, start.AddSeconds(31), out _, limit));
        Assert.False(Reserve(store, start.AddSeconds(32), out retry, limit));
        Assert.Equal(TimeSpan.FromSeconds(58), retry);
    }

    [Fact]
    public void Counters_are_separate_per_name_scope_and_key()
    {
        var store = new MemoryCounterStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 1)));
        Assert.False(Reserve(store, T0, out _, Rate(max: 1)));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, scope: "other-grant")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, name: "d")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, key: "repo-a")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, key: "repo-b")));
        Assert.False(Reserve(store, T0, out _, Rate(max: 1, key: "repo-a")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, key: "")));
    }

    [Fact]
    public void Several_counters_are_reserved_all_or_nothing()
    {
        var store = new MemoryCounterStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, name: "b")));
        Assert.False(store.TryReserve([Rate(max: 5, name: "a"), Rate(max: 1, name: "b")], T0, out _, out int refused, out _));
        Assert.Equal(1, refused);
        Assert.Equal(0, store.GetCount("a", "g", null, T0));
    }

    [Fact]
    public void The_same_counter_twice_in_one_call_counts_both_amounts()
    {
        var store = new MemoryCounterStore();
        // A `*` limit and a tool limit on one counter with different maxima.
        Assert.True(Reserve(store, T0, out _, Rate(max: 3), Rate(max: 10)));
        Assert.Equal(2, store.GetCount("c", "g", null, T0));
        Assert.False(store.TryReserve([Rate(max: 3), Rate(max: 3)], T0, out _, out int refused, out _));
        Assert.Equal(1, refused);
        Assert.Equal(2, store.GetCount("c", "g", null, T0));
    }

    [Fact]
    public void Rollback_refunds_and_commit_is_final()
    {
        var store = new MemoryCounterStore();
        var limit = Rate(max: 1);
        Assert.True(store.TryReserve([limit], T0, out var first, out _, out _));
        Assert.False(Reserve(store, T0, out _, limit));
        first.Rollback();
        Assert.Equal(0, store.GetCount("c", "g", null, T0));
        Assert.True(store.TryReserve([limit], T0.AddSeconds(1), out var second, out _, out _));
        second.Commit();
        second.Rollback(); // too late: committed
        first.Rollback(); // twice: nothing more
        Assert.Equal(1, store.GetCount("c", "g", null, T0.AddSeconds(1)));
        Assert.Equal(0, store.OpenReservationCount);
    }

    [Fact]
    public void Rollback_after_the_entry_left_the_window_does_not_refund_twice()
    {
        var store = new MemoryCounterStore();
        Assert.True(store.TryReserve([Rate(max: 2)], T0, out var old, out _, out _));
        Assert.True(Reserve(store, T0.AddSeconds(30), out _, Rate(max: 2)));
        Assert.True(Reserve(store, T0.AddSeconds(61), out _, Rate(max: 2)));
        old.Rollback();
        Assert.Equal(2, store.GetCount("c", "g", null, T0.AddSeconds(61)));
        Assert.False(Reserve(store, T0.AddSeconds(61), out _, Rate(max: 2)));
    }

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
    public void Parallel_calls_with_rollbacks_stay_exact()
    {
        var store = new MemoryCounterStore();
        int kept = 0;
        Parallel.For(0, 2000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            if (!store.TryReserve([Rate(max: 50)], T0, out var r, out _, out _)) return;
            if (i % 3 == 0) r.Rollback();
            else
            {
                r.Commit();
                Interlocked.Increment(ref kept);
            }
        });
        Assert.Equal(50, kept);
        Assert.Equal(50, store.GetCount("c", "g", null, T0));
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

    [Fact]
    public void Sliding_window_agrees_with_a_reference_model_and_never_admits_more_than_max_in_any_window()
    {
        var steps = Gen.Select(Gen.Int[0, 3000], Gen.Int[1, 4], Gen.Int[0, 5]).Select((d, a, r) => new Step(d, a, r == 0)).Array[1, 80];
        Gen.Select(steps, Gen.Int[1, 12], Gen.Int[1, 5]).Sample((list, max, windowSeconds) =>
        {
            var store = new MemoryCounterStore();
            long window = windowSeconds * TimeSpan.TicksPerSecond;
            var model = new List<(long T, double A)>();
            var t = T0;
            foreach (var step in list)
            {
                t = t.AddMilliseconds(step.DelayMs);
                long now = t.UtcTicks;
                double inWindow = 0;
                foreach (var e in model) if (e.T > now - window) inWindow += e.A;
                bool expected = inWindow + step.Amount <= max;
                bool admitted = store.TryReserve([Rate(max, windowSeconds, step.Amount)], t, out var r, out _, out var retry);
                if (admitted != expected) return false;
                if (!admitted)
                {
                    // Expected retry: the earliest time the oldest entries have left enough room.
                    TimeSpan expectedRetry = TimeSpan.MaxValue;
                    if (step.Amount <= max)
                    {
                        double excess = inWindow + step.Amount - max;
                        foreach (var e in model)
                        {
                            if (e.T <= now - window) continue;
                            excess -= e.A;
                            if (excess <= 0) { expectedRetry = TimeSpan.FromTicks(e.T + window - now); break; }
                        }
                    }
                    if (retry != expectedRetry) return false;
                    continue;
                }
                if (step.Rollback) r.Rollback();
                else
                {
                    r.Commit();
                    model.Add((now, step.Amount));
                }
            }
            // The guarantee itself: no interval (s - window, s] holds more than max.
            foreach (var end in model)
            {
                double sum = 0;
                foreach (var e in model) if (e.T > end.T - window && e.T <= end.T) sum += e.A;
                if (sum > max) return false;
            }
            return true;
        }, iter: 300);
    }
}
