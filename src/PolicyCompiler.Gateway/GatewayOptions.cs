using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;

namespace PolicyCompiler.Gateway;

/// <summary>Settings of one gateway session (docs/gateway.md, "Command line").</summary>
public sealed class GatewayOptions
{
    /// <summary>The default for <see cref="MaxMessageBytes"/>: 4 MiB.</summary>
    public const long DefaultMaxMessageBytes = 4 * 1024 * 1024;

    /// <summary>The caller's grant (identity for grant-scoped limits).</summary>
    public string Grant { get; init; } = "default";

    /// <summary>The MCP session id (stdio: one per gateway process).</summary>
    public string Session { get; init; } = Guid.NewGuid().ToString("N");

    /// <summary>The longest message accepted in either direction, in bytes (without its newline).</summary>
    public long MaxMessageBytes { get; init; } = DefaultMaxMessageBytes;

    /// <summary>Keep forwarding allowed calls when the audit log cannot be written (default: refuse them).</summary>
    public bool AuditFailOpen { get; init; }

    /// <summary>How long the upstream may take to exit after the client closed its input, or after a signal.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Where calls that need approval are held until a person answers (docs/approvals.md); null: such
    /// calls are denied at once, the reason saying approvals are unavailable.
    /// </summary>
    public ApprovalBroker? Approvals { get; init; }

    /// <summary>Where decisions are counted (the admin listener's <c>/metrics</c>), or null.</summary>
    public GatewayMetrics? Metrics { get; init; }
}
