using PolicyCompiler.Scanning.Classification;

namespace PolicyCompiler.Scanning.Discovery;

/// <summary>What a scan found.</summary>
/// <param name="Target">The scanned server.</param>
/// <param name="ServerName">The name the server gave in its initialize result (serverInfo.name).</param>
/// <param name="ServerVersion">Its version (serverInfo.version).</param>
/// <param name="ProtocolVersion">The negotiated MCP revision.</param>
/// <param name="Tools">Every tool of every page, in the server's order, each name once.</param>
/// <param name="Warnings">What a reviewer should know (repeated names, unusual names).</param>
public sealed record ScanResult(
    ScanTarget Target,
    string ServerName,
    string ServerVersion,
    string? ProtocolVersion,
    IReadOnlyList<ScannedTool> Tools,
    IReadOnlyList<string> Warnings);
