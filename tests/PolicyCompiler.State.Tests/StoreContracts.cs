using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State.Redis;
using PolicyCompiler.State.Sqlite;

namespace PolicyCompiler.State.Tests;

/// <summary>The reference: the contract suite must hold for the in-memory store it was written from.</summary>
public sealed class MemoryStoreContractTests : CounterStoreContract
{
    protected override ICounterStore NewStore() => new MemoryCounterStore();

    protected override double Count(ICounterStore store, string name, string scope, string? key, DateTimeOffset now, long window, WindowAlignment align) =>
        ((MemoryCounterStore)store).GetCount(name, scope, key, now);
}

/// <summary>Each store a new database file; same decisions as memory.</summary>
public sealed class SqliteStoreContractTests : CounterStoreContract, IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly List<SqliteCounterStore> _stores = [];

    protected override int PropertyIterations => 60;

    protected override ICounterStore NewStore()
    {
        var store = new SqliteCounterStore(_directory.File("counters.db", unique: true), timeout: TimeSpan.FromSeconds(10));
        _stores.Add(store);
        return store;
    }

    protected override double Count(ICounterStore store, string name, string scope, string? key, DateTimeOffset now, long window, WindowAlignment align) =>
        ((SqliteCounterStore)store).GetCount(name, scope, key, window, align, now);

    public void Dispose()
    {
        foreach (SqliteCounterStore store in _stores) store.Dispose();
        _directory.Dispose();
    }
}

/// <summary>Each store a new key prefix on a real redis-server; same decisions as memory.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisStoreContractTests(RedisServer redis) : CounterStoreContract, IRequiresRedis, IDisposable
{
    private readonly List<RedisCounterStore> _stores = [];

    protected override int PropertyIterations => 60;

    protected override ICounterStore NewStore()
    {
        redis.RequireInstalled();
        var store = new RedisCounterStore(redis.Location, "t" + Guid.NewGuid().ToString("N") + ":", TimeSpan.FromSeconds(10));
        _stores.Add(store);
        return store;
    }

    protected override double Count(ICounterStore store, string name, string scope, string? key, DateTimeOffset now, long window, WindowAlignment align) =>
        ((RedisCounterStore)store).GetCount(name, scope, key, window, align, now);

    public void Dispose()
    {
        foreach (RedisCounterStore store in _stores) store.Dispose();
    }
}
