using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State.Redis;
using PolicyCompiler.State.Resilience;
using StackExchange.Redis;

namespace PolicyCompiler.State.Tests;

/// <summary>Replicas sharing one real redis-server.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisReplicaTests(RedisServer redis) : IRequiresRedis
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static CounterRequest Rate(double max, string name = "c", long window = 60) => new(name, window, WindowAlignment.Sliding, "g", null, 1, max);

    [StoreFact]
    public void Two_replicas_with_sixteen_concurrent_callers_admit_exactly_max_together()
    {
        string prefix = "replicas" + Guid.NewGuid().ToString("N") + ":";
        using var a = new RedisCounterStore(redis.Location, prefix, TimeSpan.FromSeconds(10));
        using var b = new RedisCounterStore(redis.Location, prefix, TimeSpan.FromSeconds(10));
        int admitted = 0;
        Parallel.For(0, 300, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
        {
            ICounterStore store = i % 2 == 0 ? a : b;
            // Replica clocks a few ms apart: times stay non-decreasing per counter in the store.
            if (store.TryReserve([Rate(max: 40), Rate(max: 100, name: "other")], T0.AddMilliseconds(i % 5), out var r, out _, out _))
            {
                Interlocked.Increment(ref admitted);
                r.Commit();
            }
        });
        Assert.Equal(40, admitted);
        Assert.Equal(40, a.GetCount("c", "g", null, 60, WindowAlignment.Sliding, T0.AddSeconds(1)));
        Assert.Equal(40, b.GetCount("other", "g", null, 60, WindowAlignment.Sliding, T0.AddSeconds(1)));
    }

    [StoreFact]
    public void Keys_carry_the_prefix_and_expire_with_their_window()
    {
        string prefix = "ttl" + Guid.NewGuid().ToString("N") + ":";
        using var store = new RedisCounterStore(redis.Location, prefix, TimeSpan.FromSeconds(10));
        Assert.True(store.TryReserve([Rate(max: 5, window: 3600)], DateTimeOffset.UtcNow, out _, out _, out _));

        using var connection = ConnectionMultiplexer.Connect($"127.0.0.1:{redis.Port}");
        IServer server = connection.GetServer("127.0.0.1", redis.Port);
        RedisKey[] keys = server.Keys(pattern: prefix + "*").ToArray();
        Assert.Contains(keys, k => k.ToString().StartsWith(prefix + "z:c|", StringComparison.Ordinal));
        Assert.Contains(keys, k => k.ToString().StartsWith(prefix + "s:c|", StringComparison.Ordinal));
        foreach (RedisKey key in keys)
        {
            if (key == prefix + "reservation") continue;
            TimeSpan? ttl = connection.GetDatabase().KeyTimeToLive(key);
            Assert.NotNull(ttl);
            Assert.InRange(ttl!.Value, TimeSpan.FromSeconds(3600), TimeSpan.FromSeconds(3600 + 61));
        }
    }
}

/// <summary>Outages: a redis-server of its own, stopped and restarted.</summary>
public sealed class RedisOutageTests : IRequiresRedis, IDisposable
{
    private static CounterRequest Rate(double max) => new("c", 60, WindowAlignment.Sliding, "g", null, 1, max);

    // Generous: a loaded CI machine must not turn a slow answer into a spurious outage. A stopped server
    // is detected at once (closed socket, no backlog), so the timeout does not slow these tests down.
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly RedisServer _redis = new();

    [StoreFact]
    public void Fail_closed_refuses_while_redis_is_down_and_recovers_when_it_is_back_without_a_restart()
    {
        string prefix = "closed" + Guid.NewGuid().ToString("N") + ":";
        using var store = new FailModeCounterStore(new RedisCounterStore(_redis.Location, prefix, Timeout), StateFailMode.Closed);
        Assert.True(store.TryReserve([Rate(max: 100)], DateTimeOffset.UtcNow, out var first, out _, out _));
        first.Commit();

        _redis.Stop();
        var e = Assert.Throws<CounterStoreUnavailableException>(() => store.TryReserve([Rate(max: 100)], DateTimeOffset.UtcNow, out _, out _, out _));
        Assert.StartsWith($"the counter store redis://127.0.0.1:{_redis.Port}/0 is unavailable", e.Message);
        Assert.True(store.IsFailing);

        _redis.Start();
        Assert.True(WaitUntilAdmitted(store), "the store did not recover after Redis restarted");
        Assert.False(store.IsFailing);
    }

    [StoreFact]
    public void Fail_open_admits_uncounted_while_redis_is_down_and_counts_again_when_it_is_back()
    {
        string prefix = "open" + Guid.NewGuid().ToString("N") + ":";
        var inner = new RedisCounterStore(_redis.Location, prefix, Timeout);
        using var store = new FailModeCounterStore(inner, StateFailMode.Open);
        Assert.True(store.TryReserve([Rate(max: 1)], DateTimeOffset.UtcNow, out var first, out _, out _));
        first.Commit();
        Assert.False(store.TryReserve([Rate(max: 1)], DateTimeOffset.UtcNow, out _, out _, out _));

        _redis.Stop();
        Assert.True(store.TryReserve([Rate(max: 1)], DateTimeOffset.UtcNow, out var uncounted, out _, out _));
        Assert.True(uncounted.IsEmpty);
        uncounted.Rollback(); // nothing to refund, no error
        Assert.Equal(1, store.AdmittedUncounted);

        // The restarted server is empty (no persistence): the counter starts again, and counts again.
        _redis.Start();
        Assert.True(WaitUntilAdmitted(store), "the store did not recover after Redis restarted");
        Assert.True(store.TryReserve([Rate(max: 1)], DateTimeOffset.UtcNow, out _, out _, out _));
        Assert.False(store.TryReserve([Rate(max: 1)], DateTimeOffset.UtcNow, out _, out _, out _));
        Assert.Equal(1, inner.GetCount("c", "g", null, 60, WindowAlignment.Sliding, DateTimeOffset.UtcNow));
    }

    [StoreFact]
    public void A_rollback_while_redis_is_down_is_dropped_without_breaking_the_caller()
    {
        using var store = new FailModeCounterStore(new RedisCounterStore(_redis.Location, "rb" + Guid.NewGuid().ToString("N") + ":", Timeout), StateFailMode.Closed);
        Assert.True(store.TryReserve([Rate(max: 5)], DateTimeOffset.UtcNow, out var reservation, out _, out _));
        _redis.Stop();
        reservation.Rollback();
        _redis.Start();
    }

    /// <summary>Polls (bounded) until a reserve is admitted and counted: the client reconnects in the background.</summary>
    private static bool WaitUntilAdmitted(FailModeCounterStore store)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                // Open mode admits while failing, uncounted: only a counted admission means the store is back.
                if (store.TryReserve([new CounterRequest("probe", 60, WindowAlignment.Sliding, "g", null, 1, 1000)], DateTimeOffset.UtcNow, out var r, out _, out _)
                    && !store.IsFailing)
                {
                    r.Rollback();
                    return true;
                }
            }
            catch (CounterStoreUnavailableException)
            {
            }

            Thread.Sleep(100);
        }

        return false;
    }

    public void Dispose() => _redis.Dispose();
}
