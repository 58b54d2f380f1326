using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State.Redis;
using PolicyCompiler.State.Resilience;
using PolicyCompiler.State.Sqlite;

namespace PolicyCompiler.State;

/// <summary>Which kind of store <c>--state</c> names.</summary>
public enum StateKind
{
    /// <summary>Process memory (<see cref="MemoryCounterStore"/>): lost on exit, not shared.</summary>
    Memory,

    /// <summary>A SQLite file (<see cref="SqliteCounterStore"/>): shared by the processes of one machine, durable.</summary>
    Sqlite,

    /// <summary>A Redis server (<see cref="RedisCounterStore"/>): shared by replicas.</summary>
    Redis,
}

/// <summary>
/// The parsed value of <c>--state</c>: <c>memory</c>, <c>sqlite:PATH</c> or <c>redis://host:port/db</c>.
/// </summary>
/// <param name="Kind">Memory, SQLite or Redis.</param>
/// <param name="SqlitePath">The database file (SQLite only).</param>
/// <param name="Redis">The server (Redis only).</param>
public sealed record StateSpecification(StateKind Kind, string? SqlitePath = null, RedisLocation? Redis = null)
{
    /// <summary>The file name of the default database in the per-user state directory.</summary>
    public const string DefaultFileName = "counters.db";

    /// <summary>
    /// The default SQLite database: <c>$XDG_STATE_HOME/policycompiler/counters.db</c>, else
    /// <c>~/.local/state/policycompiler/counters.db</c> (on Windows, under LocalApplicationData).
    /// </summary>
    public static string DefaultSqlitePath()
    {
        string? stateHome = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        if (string.IsNullOrEmpty(stateHome) || !Path.IsPathRooted(stateHome))
        {
            stateHome = OperatingSystem.IsWindows()
                ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state");
        }

        return Path.Combine(stateHome, "policycompiler", DefaultFileName);
    }

    /// <summary>The default: SQLite at <see cref="DefaultSqlitePath"/>.</summary>
    public static StateSpecification Default => new(StateKind.Sqlite, DefaultSqlitePath());

    /// <summary>Parses a <c>--state</c> value.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out StateSpecification? specification, [NotNullWhen(false)] out string? error)
    {
        specification = null;
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "--state needs a value: memory, sqlite:PATH or redis://host:port/db.";
            return false;
        }

        if (text == "memory")
        {
            specification = new StateSpecification(StateKind.Memory);
            return true;
        }

        if (text.StartsWith("sqlite:", StringComparison.Ordinal))
        {
            string path = text["sqlite:".Length..];
            if (path.Length == 0)
            {
                error = "--state sqlite:PATH needs a file path.";
                return false;
            }

            specification = new StateSpecification(StateKind.Sqlite, Path.GetFullPath(path));
            return true;
        }

        if (text.StartsWith("redis://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(text, UriKind.Absolute, out Uri? uri) || uri.Host.Length == 0 || (uri.Query.Length > 0) || (uri.Fragment.Length > 0))
            {
                error = $"--state '{text}' is not a Redis URL: expected redis://host:port/db.";
                return false;
            }

            int port = uri.IsDefaultPort || uri.Port < 0 ? 6379 : uri.Port;
            string db = uri.AbsolutePath.Trim('/');
            int database = 0;
            if (db.Length > 0 && (!int.TryParse(db, NumberStyles.None, CultureInfo.InvariantCulture, out database) || database > 15))
            {
                error = $"--state '{text}': the database must be a number from 0 to 15.";
                return false;
            }

            string? user = null;
            string? password = null;
            if (uri.UserInfo.Length > 0)
            {
                string[] parts = Uri.UnescapeDataString(uri.UserInfo).Split(':', 2);
                user = parts[0].Length > 0 ? parts[0] : null;
                password = parts.Length > 1 ? parts[1] : null;
            }

            string host = uri.HostNameType == UriHostNameType.IPv6 ? uri.Host.Trim('[', ']') : uri.Host;
            specification = new StateSpecification(StateKind.Redis, Redis: new RedisLocation(host, port, database, user, password));
            return true;
        }

        error = $"--state '{text}' is not memory, sqlite:PATH or redis://host:port/db.";
        return false;
    }

    /// <summary>Opens the store this specification names, wrapped in the fail mode (memory never fails).</summary>
    /// <param name="prefix">Key prefix (Redis keys; SQLite counter names).</param>
    /// <param name="failMode">Closed or open.</param>
    /// <param name="timeout">The most a counter call may add to a tool call's latency.</param>
    /// <param name="logger">Where outages are logged.</param>
    public ICounterStore Open(string prefix, StateFailMode failMode, TimeSpan timeout, ILogger? logger = null)
    {
        if (logger is not null)
        {
            StateLog.Opening(logger, ToString(), failMode.ToString().ToLowerInvariant(), timeout.TotalMilliseconds);
        }

        return Kind switch
        {
            StateKind.Memory => new MemoryCounterStore(),
            StateKind.Sqlite => new FailModeCounterStore(new SqliteCounterStore(SqlitePath!, prefix, timeout), failMode, logger),
            _ => new FailModeCounterStore(new RedisCounterStore(Redis!, prefix, timeout), failMode, logger),
        };
    }

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        StateKind.Memory => "memory",
        StateKind.Sqlite => "sqlite:" + SqlitePath,
        _ => Redis!.ToString(),
    };
}

/// <summary>Log messages of the state layer.</summary>
internal static partial class StateLog
{
    [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "Counters: {State} (fail mode {FailMode}, timeout {TimeoutMs} ms)")]
    public static partial void Opening(ILogger logger, string state, string failMode, double timeoutMs);
}
