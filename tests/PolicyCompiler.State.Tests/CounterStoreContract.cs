using CsCheck;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.State.Tests;

/// <summary>
/// The <see cref="ICounterStore"/> contract, run against every store: the decisions, retry-after times and
/// refunds of <see cref="MemoryCounterStore"/> (the reference), edge for edge.
/// </summary>
public abstract class CounterStoreContract
{
    protected static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>A fresh, empty store (a test may ask for several; each is independent of the others).</summary>
    protected abstract ICounterStore NewStore();

    /// <summary>The amount counted in a window at <paramref name="now"/>.</summary>
    protected abstract double Count(ICounterStore store, string name, string scope, string? key, DateTimeOffset now, long window = 60, WindowAlignment align = WindowAlignment.Sliding);

    /// <summary>Iterations of the model-based property (each one a new store).</summary>
    protected virtual int PropertyIterations => 300;

    protected static CounterRequest Rate(double max, long window = 60, double amount = 1, string scope = "g", string? key = null, string name = "c", WindowAlignment align = WindowAlignment.Sliding) =>
        new(name, window, align, scope, key, amount, max);

    private static bool Reserve(ICounterStore store, DateTimeOffset at, out TimeSpan retryAfter, params CounterRequest[] requests) =>
        store.TryReserve(requests, at, out _, out _, out retryAfter);

    [StoreFact]
    public void Exactly_max_fit_in_a_window_and_the_next_is_admitted_exactly_when_the_oldest_leaves()
    {
        ICounterStore store = NewStore();
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

    [StoreFact]
    public void An_amount_larger_than_max_is_never_admitted()
    {
        ICounterStore store = NewStore();
        Assert.False(store.TryReserve([Rate(max: 5, amount: 6)], T0, out var reservation, out int refused, out var retry));
        Assert.Equal(0, refused);
        Assert.Equal(TimeSpan.MaxValue, retry);
        Assert.True(reservation.IsEmpty);
        Assert.True(Reserve(store, T0, out _, Rate(max: 5, amount: 5)));
    }

    [StoreFact]
    public void Amounts_add_up_and_retry_waits_for_enough_to_leave()
    {
        ICounterStore store = NewStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 10, amount: 4)));
        Assert.True(Reserve(store, T0.AddSeconds(5), out _, Rate(max: 10, amount: 4)));
        Assert.False(Reserve(store, T0.AddSeconds(6), out var retry, Rate(max: 10, amount: 5)));
        Assert.Equal(TimeSpan.FromSeconds(54), retry);
        Assert.False(Reserve(store, T0.AddSeconds(6), out retry, Rate(max: 10, amount: 9)));
        Assert.Equal(TimeSpan.FromSeconds(59), retry);
        Assert.True(Reserve(store, T0.AddSeconds(6), out _, Rate(max: 10, amount: 2)));
        Assert.Equal(10, Count(store, "c", "g", null, T0.AddSeconds(6)));
    }

    [StoreFact]
    public void Fractional_amounts_are_kept_exactly()
    {
        ICounterStore store = NewStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 0.3, amount: 0.1)));
        Assert.True(Reserve(store, T0, out _, Rate(max: 0.3, amount: 0.1)));
        Assert.Equal(0.1 + 0.1, Count(store, "c", "g", null, T0));
        Assert.False(Reserve(store, T0, out _, Rate(max: 0.3, amount: 0.15)));
    }

    [StoreFact]
    public void Calendar_windows_reset_at_the_boundary()
    {
        ICounterStore store = NewStore();
        var limit = Rate(max: 2, align: WindowAlignment.Calendar);
        var start = T0.AddSeconds(30);
        Assert.True(Reserve(store, start, out _, limit));
        Assert.True(Reserve(store, start.AddSeconds(29), out _, limit));
        Assert.False(Reserve(store, start.AddSeconds(29.5), out var retry, limit));
        Assert.Equal(TimeSpan.FromSeconds(0.5), retry);
        Assert.True(Reserve(store, start.AddSeconds(30), out _, limit));
        Assert.True(Reserve(store, start.AddSeconds(31), out _, limit));
        Assert.False(Reserve(store, start.AddSeconds(32), out retry, limit));
        Assert.Equal(TimeSpan.FromSeconds(58), retry);
        Assert.Equal(2, Count(store, "c", "g", null, start.AddSeconds(32), align: WindowAlignment.Calendar));
    }

    [StoreFact]
    public void Calendar_rollback_refunds_within_the_window()
    {
        ICounterStore store = NewStore();
        var limit = Rate(max: 1, window: 3600, align: WindowAlignment.Calendar);
        Assert.True(store.TryReserve([limit], T0, out var r, out _, out _));
        Assert.False(Reserve(store, T0.AddSeconds(1), out _, limit));
        r.Rollback();
        Assert.True(Reserve(store, T0.AddSeconds(2), out _, limit));
    }

    [StoreFact]
    public void Counters_are_separate_per_name_scope_and_key()
    {
        ICounterStore store = NewStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 1)));
        Assert.False(Reserve(store, T0, out _, Rate(max: 1)));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, scope: "other-grant")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, name: "d")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, key: "repo-a")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, key: "repo-b")));
        Assert.False(Reserve(store, T0, out _, Rate(max: 1, key: "repo-a")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, key: "")));
        // Separators inside a scope or key cannot make two identities collide.
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, scope: "a|-", key: null)));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, scope: "a", key: "|-")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, scope: "x:y", key: "z")));
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, scope: "x", key: "y:z")));
    }

    [StoreFact]
    public void Several_counters_are_reserved_all_or_nothing()
    {
        ICounterStore store = NewStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 1, name: "b")));
        Assert.False(store.TryReserve([Rate(max: 5, name: "a"), Rate(max: 1, name: "b")], T0, out _, out int refused, out _));
        Assert.Equal(1, refused);
        Assert.Equal(0, Count(store, "a", "g", null, T0));
    }

    [StoreFact]
    public void The_same_counter_twice_in_one_call_counts_both_amounts()
    {
        ICounterStore store = NewStore();
        Assert.True(Reserve(store, T0, out _, Rate(max: 3), Rate(max: 10)));
        Assert.Equal(2, Count(store, "c", "g", null, T0));
        Assert.False(store.TryReserve([Rate(max: 3), Rate(max: 3)], T0, out _, out int refused, out _));
        Assert.Equal(1, refused);
        Assert.Equal(2, Count(store, "c", "g", null, T0));
    }

    [StoreFact]
    public void Rollback_refunds_and_commit_is_final()
    {
        ICounterStore store = NewStore();
        var limit = Rate(max: 1);
        Assert.True(store.TryReserve([limit], T0, out var first, out _, out _));
        Assert.False(Reserve(store, T0, out _, limit));
        first.Rollback();
        Assert.Equal(0, Count(store, "c", "g", null, T0));
        Assert.True(store.TryReserve([limit], T0.AddSeconds(1), out var second, out _, out _));
        second.Commit();
        second.Rollback(); // too late: committed
        first.Rollback(); // twice: nothing more
        Assert.Equal(1, Count(store, "c", "g", null, T0.AddSeconds(1)));
    }

    [StoreFact]
    public void Rollback_after_the_entry_left_the_window_does_not_refund_twice()
    {
        ICounterStore store = NewStore();
        Assert.True(store.TryReserve([Rate(max: 2)], T0, out var old, out _, out _));
        Assert.True(Reserve(store, T0.AddSeconds(30), out _, Rate(max: 2)));
        Assert.True(Reserve(store, T0.AddSeconds(61), out _, Rate(max: 2)));
        old.Rollback();
        Assert.Equal(2, Count(store, "c", "g", null, T0.AddSeconds(61)));
        Assert.False(Reserve(store, T0.AddSeconds(61), out _, Rate(max: 2)));
    }

    [StoreFact]
    public void A_clock_reading_behind_the_latest_entry_counts_as_the_latest_time()
    {
        ICounterStore store = NewStore();
        Assert.True(Reserve(store, T0.AddSeconds(10), out _, Rate(max: 2)));
        // An earlier reading (another caller's clock lost the race): still counted in the same window.
        Assert.True(Reserve(store, T0.AddSeconds(5), out _, Rate(max: 2)));
        Assert.False(Reserve(store, T0.AddSeconds(69), out var retry, Rate(max: 2)));
        Assert.Equal(TimeSpan.FromSeconds(1), retry);
        Assert.True(Reserve(store, T0.AddSeconds(70), out _, Rate(max: 2)));
    }

    [StoreFact]
    public void Sixteen_concurrent_callers_admit_exactly_max()
    {
        ICounterStore store = NewStore();
        int admitted = 0;
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
        {
            if (store.TryReserve([Rate(max: 50), Rate(max: 1000, name: "global", scope: "")], T0.AddTicks(i % 7), out var r, out _, out _))
            {
                Interlocked.Increment(ref admitted);
                r.Commit();
            }
        });
        Assert.Equal(50, admitted);
        Assert.Equal(50, Count(store, "c", "g", null, T0.AddSeconds(1)));
        Assert.Equal(50, Count(store, "global", "", null, T0.AddSeconds(1)));
    }

    [StoreFact]
    public void Concurrent_callers_with_rollbacks_count_exactly_what_was_kept()
    {
        ICounterStore store = NewStore();
        int kept = 0;
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
        {
            if (!store.TryReserve([Rate(max: 30)], T0, out var r, out _, out _)) return;
            if (i % 3 == 0) r.Rollback();
            else
            {
                r.Commit();
                Interlocked.Increment(ref kept);
            }
        });
        Assert.InRange(kept, 1, 30);
        Assert.Equal(kept, Count(store, "c", "g", null, T0));
    }

    private sealed record Step(int DelayMs, int Amount, bool Rollback);

    [StoreFact]
    public void Sliding_window_agrees_with_a_reference_model_and_never_admits_more_than_max_in_any_window()
    {
        var steps = Gen.Select(Gen.Int[0, 3000], Gen.Int[1, 4], Gen.Int[0, 5]).Select((d, a, r) => new Step(d, a, r == 0)).Array[1, 40];
        Gen.Select(steps, Gen.Int[1, 12], Gen.Int[1, 5]).Sample((list, max, windowSeconds) =>
        {
            ICounterStore store = NewStore();
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
            foreach (var end in model)
            {
                double sum = 0;
                foreach (var e in model) if (e.T > end.T - window && e.T <= end.T) sum += e.A;
                if (sum > max) return false;
            }
            (store as IDisposable)?.Dispose();
            return true;
        }, iter: PropertyIterations);
    }
}
