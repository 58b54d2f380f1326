using System.Net;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// DNS-rebinding protection (MCP basic/transports#security-warning: servers MUST validate the
/// <c>Origin</c> header; an invalid one is answered 403). A page on evil.example that resolves its
/// own name to 127.0.0.1 sends <c>Origin: http://evil.example</c> and <c>Host: evil.example:8080</c>;
/// both are refused unless listed. By default only loopback origins and hosts pass (<c>localhost</c>,
/// <c>127.0.0.0/8</c>, <c>[::1]</c>); a request without <c>Origin</c> (not from a browser) passes the
/// origin check. Built once at start; checks allocate nothing.
/// </summary>
internal sealed class OriginPolicy
{
    private readonly HashSet<string> _origins;
    private readonly HashSet<string> _hosts;
    private readonly bool _anyOrigin;
    private readonly bool _anyHost;

    public OriginPolicy(IReadOnlyList<string> allowedOrigins, IReadOnlyList<string> allowedHosts)
    {
        _origins = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        _hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (string origin in allowedOrigins)
        {
            _anyOrigin |= origin == "*";
            _origins.Add(origin.TrimEnd('/'));
        }

        foreach (string host in allowedHosts)
        {
            _anyHost |= host == "*";
            _hosts.Add(host);
        }
    }

    /// <summary>Whether an <c>Origin</c> header value (null when absent) may call the gateway.</summary>
    public bool IsOriginAllowed(string? origin)
    {
        if (origin is null || _anyOrigin)
        {
            return true;
        }

        if (_origins.Contains(origin))
        {
            return true;
        }

        // "null" (sandboxed frames, file: pages) and anything unparsable are refused.
        return Uri.TryCreate(origin, UriKind.Absolute, out Uri? uri)
            && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            && IsLoopbackName(uri.Host);
    }

    /// <summary>Whether a <c>Host</c> header's host part (no port) names this gateway.</summary>
    public bool IsHostAllowed(string host) => _anyHost || _hosts.Contains(host) || IsLoopbackName(host);

    private static bool IsLoopbackName(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        ReadOnlySpan<char> address = host.AsSpan();
        if (address.Length > 2 && address[0] == '[' && address[^1] == ']')
        {
            address = address[1..^1];
        }

        return IPAddress.TryParse(address, out IPAddress? parsed) && IPAddress.IsLoopback(parsed);
    }
}
