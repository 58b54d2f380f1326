using System.Net;
using PolicyCompiler.Gateway.Enforcement.Approvals;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>Settings of the Streamable HTTP gateway (docs/http.md, "Command line").</summary>
public sealed class HttpGatewayOptions
{
    /// <summary>The default MCP endpoint path.</summary>
    public const string DefaultPath = "/mcp";

    /// <summary>Where to listen (port 0: any free port; see <see cref="HttpGateway.ListenEndPoint"/>).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 8080);

    /// <summary>The MCP endpoint path the gateway serves.</summary>
    public string Path { get; init; } = DefaultPath;

    /// <summary>The upstream MCP endpoint (Streamable HTTP), or null when <see cref="UpstreamCommand"/> is set.</summary>
    public Uri? Upstream { get; init; }

    /// <summary>A stdio server to start once per MCP session instead of an upstream URL.</summary>
    public IReadOnlyList<string>? UpstreamCommand { get; init; }

    /// <summary>Headers sent upstream with every request (<c>--upstream-header 'K: V'</c>): the gateway's own credentials.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> UpstreamHeaders { get; init; } = [];

    /// <summary>Allowed <c>Origin</c> values besides loopback ones (<c>--allowed-origin</c>; <c>*</c> allows any).</summary>
    public IReadOnlyList<string> AllowedOrigins { get; init; } = [];

    /// <summary>Allowed <c>Host</c> names besides loopback ones (<c>--allowed-host</c>; <c>*</c> allows any).</summary>
    public IReadOnlyList<string> AllowedHosts { get; init; } = [];

    /// <summary>The grants file's grants; null when tokens are not checked (every request has <see cref="DefaultGrant"/>).</summary>
    public GrantTable? Grants { get; init; }

    /// <summary>The grant of every request when <see cref="Grants"/> is null (<c>--grant</c>).</summary>
    public string DefaultGrant { get; init; } = "default";

    /// <summary>The largest request body accepted and the largest response message inspected, in bytes.</summary>
    public long MaxMessageBytes { get; init; } = GatewayOptions.DefaultMaxMessageBytes;

    /// <summary>A session unused for this long is forgotten (and its child process, if any, stopped).</summary>
    public TimeSpan SessionIdleTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Keep forwarding allowed calls when the audit log cannot be written.</summary>
    public bool AuditFailOpen { get; init; }

    /// <summary>How long a per-session child process may take to exit before it is killed.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The admin listener (<c>/healthz</c>, <c>/readyz</c>, <c>/metrics</c>), or null for none.</summary>
    public IPEndPoint? Admin { get; init; }

    /// <summary>The token the admin listener's <c>/approvals</c> routes require (docs/approvals.md); null: those routes refuse.</summary>
    public AdminToken? AdminToken { get; init; }
}
