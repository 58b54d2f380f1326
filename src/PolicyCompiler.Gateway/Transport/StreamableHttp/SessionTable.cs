using System.Collections.Concurrent;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>One MCP session seen through the gateway.</summary>
internal sealed class HttpSession(string id, string grant, long now)
{
    private long _lastUsed = now;

    /// <summary>The upstream's <c>Mcp-Session-Id</c> (passed to the client unchanged).</summary>
    public string Id { get; } = id;

    /// <summary>The grant that opened it: only that grant may use it.</summary>
    public string Grant { get; } = grant;

    /// <summary>Last use (<see cref="Environment.TickCount64"/> milliseconds).</summary>
    public long LastUsed => Volatile.Read(ref _lastUsed);

    /// <summary>Marks the session used now.</summary>
    public void Touch(long now) => Volatile.Write(ref _lastUsed, now);

    /// <summary>Whether the client declared form elicitation at initialize (approvals ask it in its own UI, docs/approvals.md).</summary>
    public bool ClientElicitation { get; private set; }

    /// <summary>The client's <c>clientInfo.name</c> from its initialize, or null.</summary>
    public string? ClientName { get; private set; }

    /// <summary>Records what the client's initialize said (once, when the session is created).</summary>
    public void RememberClient(bool elicitation, string? name)
    {
        ClientElicitation |= elicitation;
        ClientName ??= name;
    }

    private Enforcement.PinVerifier? _pins;

    /// <summary>The session's pin state (docs/scan.md, "Pinning"), created on first use.</summary>
    public Enforcement.PinVerifier Pins(Microsoft.Extensions.Logging.ILogger logger) =>
        Volatile.Read(ref _pins) ?? Interlocked.CompareExchange(ref _pins, new Enforcement.PinVerifier(logger), null) ?? _pins!;
}

/// <summary>
/// The sessions the upstream has issued (<c>Mcp-Session-Id</c> on its initialize response,
/// basic/transports#session-management), each bound to the grant that opened it. The gateway answers
/// 404 itself for a session id it never saw, or one opened by another grant (sessions are not
/// authentication: MCP security best practices), so a forged id cannot select fresh session-scoped
/// counters. Sessions idle longer than the timeout are forgotten (<see cref="Sweep"/>).
/// </summary>
internal sealed class SessionTable
{
    private readonly ConcurrentDictionary<string, HttpSession> _sessions = new(StringComparer.Ordinal);

    /// <summary>Raised when a session is removed (DELETE or idle), after it left the table.</summary>
    public event Action<HttpSession>? Removed;

    /// <summary>Open sessions.</summary>
    public int Count => _sessions.Count;

    /// <summary>Registers a session the upstream issued; an id already known keeps its first grant.</summary>
    public HttpSession Add(string id, string grant) =>
        _sessions.GetOrAdd(id, static (key, g) => new HttpSession(key, g, Environment.TickCount64), grant);

    /// <summary>The session when it exists and belongs to <paramref name="grant"/>.</summary>
    public bool TryGet(string id, string grant, out HttpSession? session)
    {
        if (_sessions.TryGetValue(id, out session) && string.Equals(session.Grant, grant, StringComparison.Ordinal))
        {
            session.Touch(Environment.TickCount64);
            return true;
        }

        session = null;
        return false;
    }

    /// <summary>Forgets a session.</summary>
    public void Remove(string id)
    {
        if (_sessions.TryRemove(id, out HttpSession? session))
        {
            Removed?.Invoke(session);
        }
    }

    /// <summary>Forgets every session unused for <paramref name="idle"/>; returns how many.</summary>
    public int Sweep(TimeSpan idle)
    {
        long cutoff = Environment.TickCount64 - (long)idle.TotalMilliseconds;
        int removed = 0;
        foreach (KeyValuePair<string, HttpSession> entry in _sessions)
        {
            if (entry.Value.LastUsed < cutoff && _sessions.TryRemove(entry))
            {
                removed++;
                Removed?.Invoke(entry.Value);
            }
        }

        return removed;
    }

    /// <summary>Forgets every session (the gateway stops).</summary>
    public void Clear()
    {
        foreach (KeyValuePair<string, HttpSession> entry in _sessions)
        {
            if (_sessions.TryRemove(entry))
            {
                Removed?.Invoke(entry.Value);
            }
        }
    }
}
