using Microsoft.Data.Sqlite;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State.Sqlite;

namespace PolicyCompiler.State.Tests;

/// <summary>What only a shared file can show: several connections, restarts, a database held by someone else.</summary>
public sealed class SqliteCounterStoreTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly TempDirectory _directory = new();

    private static CounterRequest Rate(double max, string name = "c") => new(name, 60, WindowAlignment.Sliding, "g", null, 1, max);

    [Fact]
    public void Two_stores_on_separate_connections_with_sixteen_concurrent_callers_admit_exactly_max_together()
    {
        string path = _directory.File("shared.db");
        using var a = new SqliteCounterStore(path, timeout: TimeSpan.FromSeconds(30));
        using var b = new SqliteCounterStore(path, timeout: TimeSpan.FromSeconds(30));
        int admitted = 0;
        Parallel.For(0, 300, new ParallelOptions { MaxDegreeOfParallelism = 16 }, i =>
        {
            ICounterStore store = i % 2 == 0 ? a : b;
            if (store.TryReserve([Rate(max: 40), Rate(max: 100, name: "other")], T0.AddMilliseconds(i), out var r, out _, out _))
            {
                Interlocked.Increment(ref admitted);
                r.Commit();
            }
        });
        Assert.Equal(40, admitted);
        Assert.Equal(40, a.GetCount("c", "g", null, 60, WindowAlignment.Sliding, T0.AddSeconds(1)));
        Assert.Equal(40, b.GetCount("other", "g", null, 60, WindowAlignment.Sliding, T0.AddSeconds(1)));
    }

    [Fact]
    public void Counters_survive_a_restart()
    {
        string path = _directory.File("restart.db");
        using (var first = new SqliteCounterStore(path))
        {
            for (int i = 0; i < 3; i++)
            {
                Assert.True(first.TryReserve([Rate(max: 3)], T0.AddSeconds(i), out var r, out _, out _));
                r.Commit();
            }
        }

        using var second = new SqliteCounterStore(path);
        Assert.False(second.TryReserve([Rate(max: 3)], T0.AddSeconds(10), out _, out _, out var retry));
        Assert.Equal(TimeSpan.FromSeconds(50), retry);
        Assert.True(second.TryReserve([Rate(max: 3)], T0.AddSeconds(60), out _, out _, out _));
    }

    [Fact]
    public void A_rollback_by_another_instance_of_the_same_file_is_not_possible_but_its_own_is()
    {
        string path = _directory.File("rollback.db");
        using var a = new SqliteCounterStore(path);
        using var b = new SqliteCounterStore(path);
        Assert.True(a.TryReserve([Rate(max: 1)], T0, out var reservation, out _, out _));
        // A reservation belongs to the instance that took it: passed to another, nothing happens.
        b.Rollback(new CounterReservation(b, reservation.Id));
        Assert.False(b.TryReserve([Rate(max: 1)], T0, out _, out _, out _));
        reservation.Rollback();
        Assert.True(b.TryReserve([Rate(max: 1)], T0, out _, out _, out _));
        Assert.Equal(0, a.OpenReservationCount);
    }

    [Fact]
    public void A_database_locked_by_another_process_fails_within_the_timeout_and_recovers_when_released()
    {
        string path = _directory.File("locked.db");
        using var store = new SqliteCounterStore(path, timeout: TimeSpan.FromMilliseconds(100));
        Assert.True(store.TryReserve([Rate(max: 5)], T0, out _, out _, out _));

        using (var holder = new SqliteConnection("Data Source=" + path + ";Pooling=False"))
        {
            holder.Open();
            using var begin = holder.CreateCommand();
            begin.CommandText = "BEGIN IMMEDIATE;";
            begin.ExecuteNonQuery();

            var e = Assert.Throws<CounterStoreUnavailableException>(() => store.TryReserve([Rate(max: 5)], T0, out _, out _, out _));
            Assert.Contains("another process held the database for more than 100 ms", e.Message);

            begin.CommandText = "ROLLBACK;";
            begin.ExecuteNonQuery();
        }

        Assert.True(store.TryReserve([Rate(max: 5)], T0, out _, out _, out _));
        Assert.Equal(2, store.GetCount("c", "g", null, 60, WindowAlignment.Sliding, T0));
    }

    [Fact]
    public void An_unusable_path_is_reported_as_unavailable_not_as_a_crash()
    {
        string blocker = _directory.File("not-a-directory");
        File.WriteAllText(blocker, "x");
        using var store = new SqliteCounterStore(Path.Combine(blocker, "counters.db"));
        var e = Assert.Throws<CounterStoreUnavailableException>(() => store.TryReserve([Rate(max: 5)], T0, out _, out _, out _));
        Assert.StartsWith("the counter store sqlite:", e.Message);
    }

    [Fact]
    public void Expired_rows_of_idle_counters_are_swept()
    {
        string path = _directory.File("sweep.db");
        using var store = new SqliteCounterStore(path);
        for (int i = 0; i < 1100; i++)
        {
            Assert.True(store.TryReserve([new CounterRequest("c", 1, WindowAlignment.Sliding, "g", i.ToString(), 1, 1)], T0.AddSeconds(i), out var r, out _, out _));
            r.Commit();
        }

        using var connection = new SqliteConnection("Data Source=" + path + ";Pooling=False");
        connection.Open();
        using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM admissions";
        Assert.True((long)count.ExecuteScalar()! < 200, "rows of one-second windows long gone were kept");
    }

    public void Dispose() => _directory.Dispose();
}
