using System.Globalization;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using StackExchange.Redis;

namespace PolicyCompiler.State.Redis;

/// <summary>
/// Counters in Redis, shared by every gateway replica: exact sliding windows and calendar windows, all or
/// nothing, each reserve one atomic server-side script (docs/state.md).
/// </summary>
/// <remarks>
/// <para>
/// A sliding counter is a sorted set of admissions (score = admission time, member = "id:index:amount")
/// plus its running sum; a calendar counter is one number per window (the window's index is in the key).
/// Keys carry the prefix and expire with their window (plus a margin), so idle counters vanish by
/// themselves. <see cref="RedisScripts.Reserve"/> prunes, sums, checks every counter and adds to all of
/// them, or to none, with nothing interleaved; <see cref="RedisScripts.Rollback"/> removes a reservation's
/// members. Reservation ids come from one counter in Redis (INCR), so they are unique across replicas.
/// </para>
/// <para>
/// Clock: the gateway's time (the <c>now</c> each call passes), not the server's <c>TIME</c>, so every store
/// decides identically under a test clock. Per counter, times never go backwards (a replica behind the
/// latest entry counts as that entry's time), so with replica clocks within ±δ of true time, no real
/// interval of length <c>window − 2δ</c> holds more than <c>max</c>, and a call can be refused at most 2δ
/// early (docs/state.md derives the bound).
/// </para>
/// <para>
/// Calls are synchronous, as <see cref="ICounterStore"/> is; each waits at most the timeout
/// (StackExchange.Redis's <c>SyncTimeout</c>). While the connection is down, calls fail at once (no
/// backlog) and the client reconnects in the background, so the store recovers without a restart.
/// </para>
/// </remarks>
public sealed class RedisCounterStore : ICounterStore, IDisposable
{
    // Ticks are kept exact as Lua doubles by counting from 2020 (see RedisScripts).
    private static readonly long Epoch = new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc).Ticks;

    // Keys outlive their window by this much: a replica whose clock is ahead must not see a window
    // expire early, and the margin costs only memory.
    private static readonly long ExpiryMarginMilliseconds = 60_000;

    private readonly ConnectionMultiplexer _connection;
    private readonly IDatabase _database;
    private readonly string _prefix;
    private readonly RedisKey _sequenceKey;
    private readonly TimeSpan _timeout;
    private readonly Lock _lock = new();
    private readonly Dictionary<long, Entry[]> _open = new();

    /// <summary>Connects (in the background when the server is not reachable yet) to a Redis server.</summary>
    /// <param name="location">Where the server is (<c>redis://host:port/db</c>).</param>
    /// <param name="prefix">Prepended to every key.</param>
    /// <param name="timeout">The longest a call waits for the server.</param>
    public RedisCounterStore(RedisLocation location, string prefix = "policycompiler:", TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(location);
        _timeout = timeout ?? TimeSpan.FromMilliseconds(250);
        _prefix = prefix ?? string.Empty;
        _sequenceKey = _prefix + "reservation";
        Location = location;
        int milliseconds = (int)Math.Max(1, _timeout.TotalMilliseconds);
        var options = new ConfigurationOptions
        {
            EndPoints = { { location.Host, location.Port } },
            DefaultDatabase = location.Database,
            Password = location.Password,
            User = location.User,
            ClientName = "policycompiler",
            // Start even when Redis is down; calls fail closed or open until it is back.
            AbortOnConnectFail = false,
            ConnectTimeout = Math.Max(milliseconds, 1000),
            SyncTimeout = milliseconds,
            AsyncTimeout = milliseconds,
            // Fail at once while disconnected rather than queueing calls behind a reconnect.
            BacklogPolicy = BacklogPolicy.FailFast,
            ReconnectRetryPolicy = new LinearRetry(500),
            ConnectRetry = 1,
        };
        _connection = ConnectionMultiplexer.Connect(options);
        // Without AbortOnConnectFail, Connect can return before the first handshake completes; give it
        // the connect timeout so a gateway does not start by failing (closed) or skipping (open) its counters.
        SpinWait.SpinUntil(() => _connection.IsConnected, options.ConnectTimeout);
        _database = _connection.GetDatabase(location.Database);
    }

    /// <summary>Where the server is.</summary>
    public RedisLocation Location { get; }

    /// <summary>Whether the client is connected now.</summary>
    public bool IsConnected => _connection.IsConnected;

    /// <summary>How many reservations this instance holds open (neither committed nor rolled back).</summary>
    public int OpenReservationCount
    {
        get { lock (_lock) return _open.Count; }
    }

    /// <summary>The amount counted in a counter's window at <paramref name="now"/>.</summary>
    public double GetCount(string counter, string scopeKey, string? argumentKey, long windowSeconds, WindowAlignment alignment, DateTimeOffset now)
    {
        var request = new CounterRequest(counter, windowSeconds, alignment, scopeKey, argumentKey, 1, double.MaxValue);
        string identity = CounterIdentity.Format(string.Empty, request);
        long windowTicks = CounterIdentity.WindowTicks(windowSeconds);
        long nowTicks = now.UtcTicks;
        RedisKey key;
        RedisValue cutoff;
        if (alignment == WindowAlignment.Calendar)
        {
            key = string.Concat(_prefix, "k:", identity, "#", Number(CounterIdentity.CalendarWindowIndex(nowTicks, windowTicks)));
            cutoff = string.Empty;
        }
        else
        {
            key = string.Concat(_prefix, "z:", identity);
            cutoff = Number(nowTicks - windowTicks - Epoch);
        }

        try
        {
            return double.Parse((string)_database.ScriptEvaluate(RedisScripts.Count, [key], [cutoff])!, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Fail(e);
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
        if (requests.IsEmpty)
        {
            return true;
        }

        long nowTicks = now.UtcTicks;
        int n = requests.Length;
        var keys = new RedisKey[1 + 2 * n];
        var values = new RedisValue[1 + 6 * n];
        var amounts = new string[n];
        keys[0] = _sequenceKey;
        values[0] = Number(nowTicks - Epoch);
        for (int i = 0; i < n; i++)
        {
            ref readonly CounterRequest request = ref requests[i];
            string identity = CounterIdentity.Format(string.Empty, request);
            long windowTicks = CounterIdentity.WindowTicks(request.WindowSeconds);
            bool calendar = request.Alignment == WindowAlignment.Calendar;
            long windowEnd = 0;
            long expiryMilliseconds;
            if (calendar)
            {
                long index = CounterIdentity.CalendarWindowIndex(nowTicks, windowTicks);
                windowEnd = CounterIdentity.CalendarWindowEnd(index, windowTicks);
                keys[1 + 2 * i] = keys[2 + 2 * i] = string.Concat(_prefix, "k:", identity, "#", Number(index));
                expiryMilliseconds = (windowEnd - nowTicks) / TimeSpan.TicksPerMillisecond + ExpiryMarginMilliseconds;
            }
            else
            {
                keys[1 + 2 * i] = string.Concat(_prefix, "z:", identity);
                keys[2 + 2 * i] = string.Concat(_prefix, "s:", identity);
                expiryMilliseconds = windowTicks / TimeSpan.TicksPerMillisecond + ExpiryMarginMilliseconds;
            }

            amounts[i] = request.Amount.ToString("R", CultureInfo.InvariantCulture);
            int b = 1 + 6 * i;
            values[b] = Number(windowTicks);
            values[b + 1] = calendar ? "1" : "0";
            values[b + 2] = amounts[i];
            values[b + 3] = request.Max.ToString("R", CultureInfo.InvariantCulture);
            values[b + 4] = Number(Math.Max(1, expiryMilliseconds));
            values[b + 5] = Number(windowEnd - Epoch);
        }

        RedisResult[] result;
        try
        {
            result = (RedisResult[])_database.ScriptEvaluate(RedisScripts.Reserve, keys, values)!;
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Fail(e);
        }

        if ((long)result[0] == 0)
        {
            refusedIndex = (int)result[1];
            long ticks = (long)result[2];
            retryAfter = ticks < 0 ? TimeSpan.MaxValue : TimeSpan.FromTicks(ticks);
            return false;
        }

        long id = (long)result[1];
        var entries = new Entry[n];
        for (int i = 0; i < n; i++)
        {
            bool calendar = requests[i].Alignment == WindowAlignment.Calendar;
            string member = calendar ? string.Empty : string.Concat(Number(id), ":", Number(i + 1), ":", amounts[i]);
            entries[i] = new Entry(keys[1 + 2 * i], keys[2 + 2 * i], member, amounts[i]);
        }

        lock (_lock)
        {
            _open.Add(id, entries);
        }

        reservation = new CounterReservation(this, id);
        return true;
    }

    /// <inheritdoc/>
    public void Commit(in CounterReservation reservation)
    {
        if (!ReferenceEquals(reservation.Store, this))
        {
            return;
        }

        lock (_lock)
        {
            _open.Remove(reservation.Id);
        }
    }

    /// <inheritdoc/>
    public void Rollback(in CounterReservation reservation)
    {
        if (!ReferenceEquals(reservation.Store, this))
        {
            return;
        }

        Entry[]? entries;
        lock (_lock)
        {
            // A rollback after a commit, or a second one, is too late: nothing to refund.
            if (!_open.Remove(reservation.Id, out entries))
            {
                return;
            }
        }

        var keys = new RedisKey[2 * entries.Length];
        var values = new RedisValue[2 * entries.Length];
        for (int j = 0; j < entries.Length; j++)
        {
            keys[2 * j] = entries[j].Key;
            keys[2 * j + 1] = entries[j].SumKey;
            values[2 * j] = entries[j].Member;
            values[2 * j + 1] = entries[j].Amount;
        }

        try
        {
            _database.ScriptEvaluate(RedisScripts.Rollback, keys, values);
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            // The amounts stay counted until their window ends: the store errs towards refusing.
            throw Fail(e);
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _connection.Dispose();

    private static bool IsStoreFailure(Exception e) => e is RedisException or TimeoutException or ObjectDisposedException;

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private CounterStoreUnavailableException Fail(Exception e)
    {
        string what = e switch
        {
            TimeoutException => $"no answer within {_timeout.TotalMilliseconds:0} ms",
            RedisConnectionException connection => $"not connected ({connection.FailureType})",
            _ => FirstLine(e.Message),
        };
        return new CounterStoreUnavailableException($"the counter store {Location} is unavailable: {what}", e);
    }

    private static string FirstLine(string text)
    {
        int end = text.IndexOfAny(['\r', '\n']);
        string line = end < 0 ? text : text[..end];
        return line.Length <= 200 ? line : line[..200];
    }

    private readonly record struct Entry(RedisKey Key, RedisKey SumKey, string Member, string Amount);
}

/// <summary>A Redis server named by <c>redis://[[user]:password@]host[:port][/db]</c>.</summary>
/// <param name="Host">Host name or address.</param>
/// <param name="Port">TCP port (6379 by default).</param>
/// <param name="Database">Database number (0 by default).</param>
/// <param name="User">ACL user, if any.</param>
/// <param name="Password">Password, if any (never printed).</param>
public sealed record RedisLocation(string Host, int Port, int Database, string? User = null, string? Password = null)
{
    /// <summary>The location without credentials, for messages.</summary>
    public override string ToString() => $"redis://{Host}:{Port.ToString(CultureInfo.InvariantCulture)}/{Database.ToString(CultureInfo.InvariantCulture)}";
}
