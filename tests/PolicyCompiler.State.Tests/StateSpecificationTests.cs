using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State.Resilience;
using PolicyCompiler.State.Sqlite;

namespace PolicyCompiler.State.Tests;

public sealed class StateSpecificationTests
{
    [Fact]
    public void Memory_sqlite_and_redis_are_parsed()
    {
        Assert.True(StateSpecification.TryParse("memory", out var memory, out _));
        Assert.Equal(StateKind.Memory, memory.Kind);

        Assert.True(StateSpecification.TryParse("sqlite:/var/lib/pc/counters.db", out var sqlite, out _));
        Assert.Equal(StateKind.Sqlite, sqlite.Kind);
        Assert.Equal("/var/lib/pc/counters.db", sqlite.SqlitePath);

        Assert.True(StateSpecification.TryParse("redis://cache.internal:6380/2", out var redis, out _));
        Assert.Equal(("cache.internal", 6380, 2), (redis.Redis!.Host, redis.Redis.Port, redis.Redis.Database));

        Assert.True(StateSpecification.TryParse("redis://:s3cret@127.0.0.1", out var secret, out _));
        Assert.Equal(("127.0.0.1", 6379, 0, "s3cret"), (secret.Redis!.Host, secret.Redis.Port, secret.Redis.Database, secret.Redis.Password));
        Assert.DoesNotContain("s3cret", secret.ToString());
    }

    [Theory]
    [InlineData("", "needs a value")]
    [InlineData("sqlite:", "needs a file path")]
    [InlineData("redis://host:6379/99", "from 0 to 15")]
    [InlineData("redis://host:6379/x", "from 0 to 15")]
    [InlineData("postgres://x", "is not memory, sqlite:PATH or redis://host:port/db")]
    [InlineData("Memory", "is not memory")]
    public void Invalid_values_are_refused_with_a_reason(string text, string reason)
    {
        Assert.False(StateSpecification.TryParse(text, out _, out string? error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void The_default_database_is_in_the_per_user_state_directory()
    {
        string path = StateSpecification.DefaultSqlitePath();
        Assert.EndsWith(Path.Combine("policycompiler", "counters.db"), path);
        Assert.True(Path.IsPathRooted(path));
    }

    [Fact]
    public void Open_wraps_durable_stores_in_the_fail_mode_and_keeps_memory_bare()
    {
        Assert.IsType<MemoryCounterStore>(new StateSpecification(StateKind.Memory).Open("", StateFailMode.Closed, TimeSpan.FromSeconds(1)));
        using var directory = new TempDirectory();
        var store = Assert.IsType<FailModeCounterStore>(
            new StateSpecification(StateKind.Sqlite, directory.File("x.db")).Open("p:", StateFailMode.Open, TimeSpan.FromSeconds(1)));
        Assert.Equal(StateFailMode.Open, store.Mode);
        Assert.IsType<SqliteCounterStore>(store.Inner);
        store.Dispose();
    }
}

/// <summary>The decorator alone, over a store that fails on demand.</summary>
public sealed class FailModeCounterStoreTests
{
    private static readonly CounterRequest[] Requests = [new("c", 60, WindowAlignment.Sliding, "g", null, 1, 1)];

    private sealed class FlakyStore : ICounterStore
    {
        public readonly MemoryCounterStore Memory = new();
        public bool Down;

        public bool TryReserve(ReadOnlySpan<CounterRequest> requests, DateTimeOffset now, out CounterReservation reservation, out int refusedIndex, out TimeSpan retryAfter)
        {
            if (Down) throw new CounterStoreUnavailableException("the counter store test is unavailable: down");
            bool admitted = Memory.TryReserve(requests, now, out var inner, out refusedIndex, out retryAfter);
            reservation = inner.IsEmpty ? default : new CounterReservation(this, inner.Id);
            return admitted;
        }

        public void Commit(in CounterReservation reservation)
        {
            if (Down) throw new CounterStoreUnavailableException("down");
            Memory.Commit(new CounterReservation(Memory, reservation.Id));
        }

        public void Rollback(in CounterReservation reservation)
        {
            if (Down) throw new CounterStoreUnavailableException("down");
            Memory.Rollback(new CounterReservation(Memory, reservation.Id));
        }
    }

    [Fact]
    public void Reservations_are_settled_through_the_decorator_into_the_inner_store()
    {
        var flaky = new FlakyStore();
        var store = new FailModeCounterStore(flaky, StateFailMode.Closed);
        Assert.True(store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out var reservation, out _, out _));
        Assert.Same(store, reservation.Store);
        Assert.Equal(1, flaky.Memory.OpenReservationCount);
        reservation.Rollback();
        Assert.Equal(0, flaky.Memory.OpenReservationCount);
        Assert.True(store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out _, out _, out _));
        Assert.False(store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out _, out int refused, out var retry));
        Assert.Equal(0, refused);
        Assert.Equal(TimeSpan.FromSeconds(60), retry);
    }

    [Fact]
    public void Closed_rethrows_open_admits_and_both_recover_on_the_next_call()
    {
        foreach (StateFailMode mode in new[] { StateFailMode.Closed, StateFailMode.Open })
        {
            var flaky = new FlakyStore { Down = true };
            var store = new FailModeCounterStore(flaky, mode);
            if (mode == StateFailMode.Closed)
            {
                var e = Assert.Throws<CounterStoreUnavailableException>(() => store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out _, out _, out _));
                Assert.Contains("down", e.Message);
            }
            else
            {
                Assert.True(store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out var r, out _, out _));
                Assert.True(r.IsEmpty);
                Assert.Equal(1, store.AdmittedUncounted);
            }

            Assert.True(store.IsFailing);
            flaky.Down = false;
            Assert.True(store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out var counted, out _, out _));
            Assert.False(counted.IsEmpty);
            Assert.False(store.IsFailing);
        }
    }

    [Fact]
    public void A_settle_that_fails_is_dropped()
    {
        var flaky = new FlakyStore();
        var store = new FailModeCounterStore(flaky, StateFailMode.Closed);
        Assert.True(store.TryReserve(Requests, DateTimeOffset.UnixEpoch, out var reservation, out _, out _));
        flaky.Down = true;
        reservation.Commit();
        reservation.Rollback();
        flaky.Down = false;
        Assert.Equal(1, flaky.Memory.OpenReservationCount);
    }
}
