using System.Globalization;
using Microsoft.Data.Sqlite;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using SQLitePCL;

namespace PolicyCompiler.State.Sqlite;

/// <summary>
/// Counters in a SQLite file shared by every gateway process on a machine: exact sliding windows and
/// calendar windows, all or nothing, surviving restarts (docs/state.md).
/// </summary>
/// <remarks>
/// <para>
/// Every admission is a row (counter identity, time, expiry, amount, reservation id), and every counter a
/// row with its running total (so a reserve's cost does not grow with what the window holds). A reserve is one
/// <c>BEGIN IMMEDIATE</c> transaction: SQLite's single writer lock serializes reserves across processes,
/// so "prune what expired, sum what is left, insert if it fits, commit" is atomic without a
/// read-modify-write race. The decision is the same as <see cref="MemoryCounterStore"/>'s, step for
/// step: an entry leaves a sliding window at <c>t + window</c>; a calendar entry at its window's end;
/// times are kept non-decreasing per counter; amounts earlier in the same call count as pending.
/// </para>
/// <para>
/// A rollback deletes the reservation's rows; a commit only forgets the id (the rows already count).
/// A process that dies between the two leaves its rows counted: the store errs towards refusing.
/// WAL mode lets the database be read while written, and <c>synchronous=NORMAL</c> keeps a commit
/// free of fsync (a power loss can lose the last admissions, never corrupt the file).
/// </para>
/// <para>
/// One connection per store, used under a lock (a SQLite connection is single-threaded); waiting for
/// that lock and for another process's write lock are each bounded by the timeout, after which the call
/// fails with <see cref="CounterStoreUnavailableException"/>. The transaction is begun through the raw
/// API so that SQLite's own <c>busy_timeout</c> is the bound (Microsoft.Data.Sqlite's retry loop counts
/// whole seconds). A failed connection is closed and reopened on the next call.
/// </para>
/// </remarks>
public sealed class SqliteCounterStore : ICounterStore, IDisposable
{
    // Rows of counters nobody touches again are deleted by a whole-table sweep every so many reserves.
    private const int SweepEvery = 1024;

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS admissions (
            counter TEXT NOT NULL,
            at INTEGER NOT NULL,
            expires INTEGER NOT NULL,
            amount REAL NOT NULL,
            reservation INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS admissions_by_counter ON admissions (counter, at);
        CREATE INDEX IF NOT EXISTS admissions_by_expiry ON admissions (counter, expires);
        CREATE INDEX IF NOT EXISTS admissions_by_reservation ON admissions (reservation);
        CREATE TABLE IF NOT EXISTS counters (
            counter TEXT PRIMARY KEY,
            total REAL NOT NULL,
            entries INTEGER NOT NULL,
            latest INTEGER NOT NULL,
            last_expires INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (last_expires);
        PRAGMA user_version = 1;
        """;

    private readonly string _path;
    private readonly string _prefix;
    private readonly TimeSpan _timeout;
    private readonly Lock _lock = new();
    private readonly HashSet<long> _open = new();
    private Statements? _statements;
    private int _reservesSinceSweep;
    private bool _disposed;

    /// <summary>Creates a store over the database at <paramref name="path"/> (created on first use, with its directory).</summary>
    /// <param name="path">The database file.</param>
    /// <param name="prefix">Prepended to every counter identity (separates gateways that share one file).</param>
    /// <param name="timeout">The longest a call waits for this process's connection or another process's write lock.</param>
    public SqliteCounterStore(string path, string prefix = "", TimeSpan? timeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        _path = System.IO.Path.GetFullPath(path);
        _prefix = prefix ?? string.Empty;
        _timeout = timeout ?? TimeSpan.FromMilliseconds(250);
    }

    /// <summary>The database file.</summary>
    public string Path => _path;

    /// <summary>How many reservations this instance holds open (neither committed nor rolled back).</summary>
    public int OpenReservationCount
    {
        get { lock (_lock) return _open.Count; }
    }

    /// <summary>The amount counted in a counter's window at <paramref name="now"/>, as the next reserve would see it.</summary>
    public double GetCount(string counter, string scopeKey, string? argumentKey, long windowSeconds, WindowAlignment alignment, DateTimeOffset now)
    {
        var request = new CounterRequest(counter, windowSeconds, alignment, scopeKey, argumentKey, 1, double.MaxValue);
        string identity = CounterIdentity.Format(_prefix, request);
        return Locked(() =>
        {
            return Open().CountUnexpired(identity, now.UtcTicks);
        });
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
        var identities = new string[n];
        var sums = new double[n];
        var ats = new long[n];
        var pending = new double[n];
        var firstUse = new int[n];
        for (int i = 0; i < n; i++)
        {
            identities[i] = CounterIdentity.Format(_prefix, requests[i]);
        }

        Enter();
        try
        {
            Statements s = Open();
            s.BeginImmediate();
            try
            {
                if (++_reservesSinceSweep >= SweepEvery)
                {
                    _reservesSinceSweep = 0;
                    s.SweepExpired(nowTicks);
                }

                // Phase 1: check every counter in order; a counter named twice sees the first amount as pending.
                for (int i = 0; i < n; i++)
                {
                    ref readonly CounterRequest request = ref requests[i];
                    int first = Array.IndexOf(identities, identities[i], 0, i);
                    if (first < 0)
                    {
                        first = i;
                        (sums[i], ats[i]) = s.ReadWindow(identities[i], nowTicks);
                    }

                    firstUse[i] = first;
                    double sum = sums[first];
                    long at = ats[first];
                    if (sum + pending[first] + request.Amount > request.Max)
                    {
                        refusedIndex = i;
                        retryAfter = TimeUntilFits(s, request, identities[i], sum, pending[first] + request.Amount, at, nowTicks);
                        s.Commit(); // keep the pruning
                        return false;
                    }

                    pending[first] += request.Amount;
                }

                // Phase 2: everything fits; one id for the reservation's rows. Random 63-bit ids make a
                // collision between processes negligible (no shared sequence needed).
                long id = Random.Shared.NextInt64(1, long.MaxValue);
                for (int i = 0; i < n; i++)
                {
                    ref readonly CounterRequest request = ref requests[i];
                    long at = ats[firstUse[i]];
                    long windowTicks = CounterIdentity.WindowTicks(request.WindowSeconds);
                    long expires = request.Alignment == WindowAlignment.Calendar
                        ? CounterIdentity.CalendarWindowEnd(CounterIdentity.CalendarWindowIndex(at, windowTicks), windowTicks)
                        : at + windowTicks;
                    s.Insert(identities[i], at, expires, request.Amount, id);
                    s.AddToCounter(identities[i], at, expires, request.Amount);
                }

                s.Commit();
                _open.Add(id);
                reservation = new CounterReservation(this, id);
                return true;
            }
            catch
            {
                s.RollbackQuietly();
                throw;
            }
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Fail(e);
        }
        finally
        {
            _lock.Exit();
        }
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

        long id = reservation.Id;
        Enter();
        try
        {
            // Only a reservation this instance took and has not settled: a rollback after a commit is too late.
            if (!_open.Contains(id))
            {
                return;
            }

            Statements s = Open();
            s.BeginImmediate();
            try
            {
                s.DeleteReservation(id);
                s.Commit();
            }
            catch
            {
                s.RollbackQuietly();
                throw;
            }

            _open.Remove(id);
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Fail(e);
        }
        finally
        {
            _lock.Exit();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _statements?.Dispose();
            _statements = null;
        }
    }

    /// <summary>Whether <paramref name="e"/> means the store cannot be used now (as opposed to a bug).</summary>
    internal static bool IsStoreFailure(Exception e) =>
        e is SqliteException or IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException
            or CounterStoreUnavailableException
        || e is TypeInitializationException { InnerException: { } inner } && IsStoreFailure(inner);

    private static TimeSpan TimeUntilFits(Statements s, in CounterRequest request, string identity, double sum, double amount, long at, long nowTicks)
    {
        if (amount > request.Max)
        {
            return TimeSpan.MaxValue;
        }

        long windowTicks = CounterIdentity.WindowTicks(request.WindowSeconds);
        if (request.Alignment == WindowAlignment.Calendar)
        {
            long end = CounterIdentity.CalendarWindowEnd(CounterIdentity.CalendarWindowIndex(at, windowTicks), windowTicks);
            return TimeSpan.FromTicks(end - nowTicks);
        }

        // The oldest entries leave first, each at its expiry.
        double excess = sum + amount - request.Max;
        long? frees = s.FirstExpiryFreeing(identity, excess);
        return TimeSpan.FromTicks(Math.Max(0, (frees ?? at + windowTicks) - nowTicks));
    }

    private void Enter()
    {
        if (!_lock.TryEnter(_timeout))
        {
            throw new CounterStoreUnavailableException(
                $"the counter store sqlite:{_path} did not answer within {_timeout.TotalMilliseconds:0} ms (too many concurrent calls)");
        }
    }

    private T Locked<T>(Func<T> action)
    {
        Enter();
        try
        {
            return action();
        }
        catch (Exception e) when (IsStoreFailure(e))
        {
            throw Fail(e);
        }
        finally
        {
            _lock.Exit();
        }
    }

    private CounterStoreUnavailableException Fail(Exception e)
    {
        if (e is CounterStoreUnavailableException unavailable)
        {
            return unavailable;
        }

        // The connection may be in any state after an error: start afresh on the next call (recovery
        // without a restart when, say, the disk has room again).
        _statements?.Dispose();
        _statements = null;
        string what = e is SqliteException { SqliteErrorCode: raw.SQLITE_BUSY or raw.SQLITE_LOCKED }
            ? $"another process held the database for more than {_timeout.TotalMilliseconds:0} ms"
            : e.Message;
        return new CounterStoreUnavailableException($"the counter store sqlite:{_path} is unavailable: {what}", e);
    }

    private Statements Open()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_statements is not null)
        {
            return _statements;
        }

        SystemSqlite.EnsureInitialized();
        string? directory = System.IO.Path.GetDirectoryName(_path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = _path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = (int)Math.Ceiling(_timeout.TotalSeconds),
        }.ToString());
        try
        {
            connection.Open();
            using (SqliteCommand pragma = connection.CreateCommand())
            {
                // busy_timeout first: switching to WAL and creating the schema take the write lock.
                pragma.CommandText = "PRAGMA busy_timeout = " + ((long)_timeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + ";";
                pragma.ExecuteNonQuery();
                pragma.CommandText = "PRAGMA journal_mode = WAL;";
                pragma.ExecuteNonQuery();
                pragma.CommandText = "PRAGMA synchronous = NORMAL;";
                pragma.ExecuteNonQuery();
            }

            Statements.Exec(connection, "BEGIN IMMEDIATE;");
            try
            {
                using SqliteCommand schema = connection.CreateCommand();
                schema.CommandText = Schema;
                schema.ExecuteNonQuery();
                Statements.Exec(connection, "COMMIT;");
            }
            catch
            {
                Statements.RollbackQuietly(connection);
                throw;
            }

            _statements = new Statements(connection);
            return _statements;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>The connection and its prepared statements.</summary>
    private sealed class Statements : IDisposable
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _readCounter;
        private readonly SqliteCommand _expired;
        private readonly SqliteCommand _prune;
        private readonly SqliteCommand _setCounter;
        private readonly SqliteCommand _addToCounter;
        private readonly SqliteCommand _reservationAmounts;
        private readonly SqliteCommand _refundCounter;
        private readonly SqliteCommand _sweepCounters;
        private readonly SqliteCommand _entries;
        private readonly SqliteCommand _insert;
        private readonly SqliteCommand _deleteReservation;
        private readonly SqliteCommand _sweep;
        private readonly SqliteCommand _count;

        public Statements(SqliteConnection connection)
        {
            _connection = connection;
            _readCounter = Command("SELECT total, entries, latest FROM counters WHERE counter = $counter", "$counter");
            _expired = Command("SELECT TOTAL(amount), COUNT(*) FROM admissions WHERE counter = $counter AND expires <= $at", "$counter", "$at");
            _prune = Command("DELETE FROM admissions WHERE counter = $counter AND expires <= $at", "$counter", "$at");
            _setCounter = Command("UPDATE counters SET total = $total, entries = $entries WHERE counter = $counter", "$counter", "$total", "$entries");
            _addToCounter = Command(
                "INSERT INTO counters (counter, total, entries, latest, last_expires) VALUES ($counter, $amount, 1, $at, $expires) "
                + "ON CONFLICT (counter) DO UPDATE SET total = total + excluded.total, entries = entries + 1, "
                + "latest = max(latest, excluded.latest), last_expires = max(last_expires, excluded.last_expires)",
                "$counter", "$amount", "$at", "$expires");
            _reservationAmounts = Command("SELECT counter, TOTAL(amount), COUNT(*) FROM admissions WHERE reservation = $reservation GROUP BY counter", "$reservation");
            _refundCounter = Command(
                "UPDATE counters SET total = CASE WHEN entries - $entries <= 0 THEN 0 ELSE max(0, total - $amount) END, entries = max(0, entries - $entries) WHERE counter = $counter",
                "$counter", "$amount", "$entries");
            _sweepCounters = Command("DELETE FROM counters WHERE last_expires <= $now", "$now");
            _entries = Command("SELECT expires, amount FROM admissions WHERE counter = $counter ORDER BY at, rowid", "$counter");
            _insert = Command(
                "INSERT INTO admissions (counter, at, expires, amount, reservation) VALUES ($counter, $at, $expires, $amount, $reservation)",
                "$counter", "$at", "$expires", "$amount", "$reservation");
            _deleteReservation = Command("DELETE FROM admissions WHERE reservation = $reservation", "$reservation");
            _sweep = Command("DELETE FROM admissions WHERE counter IN (SELECT counter FROM counters WHERE last_expires <= $now)", "$now");
            _count = Command("SELECT TOTAL(amount) FROM admissions WHERE counter = $counter AND expires > $now", "$counter", "$now");
        }

        public void BeginImmediate() => Exec(_connection, "BEGIN IMMEDIATE;");

        public void Commit() => Exec(_connection, "COMMIT;");

        public void RollbackQuietly() => RollbackQuietly(_connection);

        public static void RollbackQuietly(SqliteConnection connection)
        {
            if (connection.Handle is { } handle && raw.sqlite3_get_autocommit(handle) == 0)
            {
                raw.sqlite3_exec(handle, "ROLLBACK;");
            }
        }

        /// <summary>Runs <paramref name="sql"/> through the raw API, so that busy_timeout alone bounds the wait for another process's lock.</summary>
        public static void Exec(SqliteConnection connection, string sql)
        {
            int rc = raw.sqlite3_exec(connection.Handle, sql);
            SqliteException.ThrowExceptionForRC(rc, connection.Handle);
        }

        /// <summary>
        /// Prunes what left the window and returns (sum, effective time): the effective time is never
        /// earlier than the counter's latest entry, so entries stay in time order per counter. The sum is
        /// the counter row's running total, so a reserve costs the same whatever the window holds; pruning
        /// touches only the rows that expired.
        /// </summary>
        public (double Sum, long At) ReadWindow(string identity, long nowTicks)
        {
            _readCounter.Parameters[0].Value = identity;
            double total;
            long entries;
            long latest;
            using (SqliteDataReader reader = _readCounter.ExecuteReader())
            {
                if (!reader.Read())
                {
                    return (0, nowTicks);
                }

                total = reader.GetDouble(0);
                entries = reader.GetInt64(1);
                latest = reader.GetInt64(2);
            }

            // A clock reading that lost a race (or a clock behind another process's): count as the latest time seen.
            long at = Math.Max(nowTicks, latest);
            _expired.Parameters[0].Value = identity;
            _expired.Parameters[1].Value = at;
            double expiredAmount;
            long expiredCount;
            using (SqliteDataReader reader = _expired.ExecuteReader())
            {
                reader.Read();
                expiredAmount = reader.GetDouble(0);
                expiredCount = reader.GetInt64(1);
            }

            if (expiredCount > 0)
            {
                _prune.Parameters[0].Value = identity;
                _prune.Parameters[1].Value = at;
                _prune.ExecuteNonQuery();
                entries -= expiredCount;
                // Float dust from removals cannot survive an empty window.
                total = entries <= 0 ? 0 : Math.Max(0, total - expiredAmount);
                // Written now, not only on admission: a refusal must not leave the pruned amounts counted.
                _setCounter.Parameters[0].Value = identity;
                _setCounter.Parameters[1].Value = total;
                _setCounter.Parameters[2].Value = Math.Max(0, entries);
                _setCounter.ExecuteNonQuery();
            }

            return (entries <= 0 ? 0 : total, at);
        }

        public void AddToCounter(string identity, long at, long expires, double amount)
        {
            _addToCounter.Parameters[0].Value = identity;
            _addToCounter.Parameters[1].Value = amount;
            _addToCounter.Parameters[2].Value = at;
            _addToCounter.Parameters[3].Value = expires;
            _addToCounter.ExecuteNonQuery();
        }

        public double CountUnexpired(string identity, long nowTicks)
        {
            _count.Parameters[0].Value = identity;
            _count.Parameters[1].Value = nowTicks;
            return Convert.ToDouble(_count.ExecuteScalar(), CultureInfo.InvariantCulture);
        }

        public long? FirstExpiryFreeing(string identity, double excess)
        {
            _entries.Parameters[0].Value = identity;
            using SqliteDataReader reader = _entries.ExecuteReader();
            while (reader.Read())
            {
                excess -= reader.GetDouble(1);
                if (excess <= 0)
                {
                    return reader.GetInt64(0);
                }
            }

            return null;
        }

        public void Insert(string identity, long at, long expires, double amount, long reservation)
        {
            _insert.Parameters[0].Value = identity;
            _insert.Parameters[1].Value = at;
            _insert.Parameters[2].Value = expires;
            _insert.Parameters[3].Value = amount;
            _insert.Parameters[4].Value = reservation;
            _insert.ExecuteNonQuery();
        }

        public void DeleteReservation(long reservation)
        {
            // Entries that already left their window were pruned (and subtracted) before: only what is
            // still there is refunded from the running totals.
            _reservationAmounts.Parameters[0].Value = reservation;
            var refunds = new List<(string Counter, double Amount, long Entries)>();
            using (SqliteDataReader reader = _reservationAmounts.ExecuteReader())
            {
                while (reader.Read())
                {
                    refunds.Add((reader.GetString(0), reader.GetDouble(1), reader.GetInt64(2)));
                }
            }

            foreach ((string counter, double amount, long entries) in refunds)
            {
                _refundCounter.Parameters[0].Value = counter;
                _refundCounter.Parameters[1].Value = amount;
                _refundCounter.Parameters[2].Value = entries;
                _refundCounter.ExecuteNonQuery();
            }

            _deleteReservation.Parameters[0].Value = reservation;
            _deleteReservation.ExecuteNonQuery();
        }

        /// <summary>Deletes counters (and their rows) whose every entry has expired.</summary>
        public void SweepExpired(long nowTicks)
        {
            _sweep.Parameters[0].Value = nowTicks;
            _sweep.ExecuteNonQuery();
            _sweepCounters.Parameters[0].Value = nowTicks;
            _sweepCounters.ExecuteNonQuery();
        }

        public void Dispose()
        {
            RollbackQuietly();
            _readCounter.Dispose();
            _expired.Dispose();
            _prune.Dispose();
            _setCounter.Dispose();
            _addToCounter.Dispose();
            _reservationAmounts.Dispose();
            _refundCounter.Dispose();
            _sweepCounters.Dispose();
            _entries.Dispose();
            _insert.Dispose();
            _deleteReservation.Dispose();
            _sweep.Dispose();
            _count.Dispose();
            _connection.Dispose();
        }

        private SqliteCommand Command(string sql, params string[] parameters)
        {
            SqliteCommand command = _connection.CreateCommand();
            command.CommandText = sql;
            foreach (string name in parameters)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Prepare();
            return command;
        }
    }
}
