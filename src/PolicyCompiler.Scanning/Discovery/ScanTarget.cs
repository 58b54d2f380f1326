namespace PolicyCompiler.Scanning.Discovery;

/// <summary>The server to scan.</summary>
public abstract record ScanTarget
{
    /// <summary>How the generated policy's description names the server: never a header value or a URL's query (they carry secrets).</summary>
    public abstract string Describe();
}

/// <summary>A server started as a process and spoken to over stdio (MCP basic/transports#stdio).</summary>
/// <param name="Command">The executable (a path, or a name looked up in PATH).</param>
/// <param name="Arguments">Its arguments.</param>
public sealed record StdioScanTarget(string Command, IReadOnlyList<string> Arguments) : ScanTarget
{
    /// <inheritdoc/>
    public override string Describe() =>
        "stdio: " + string.Join(' ', new[] { Command }.Concat(Arguments).Select(a => a.Contains(' ', StringComparison.Ordinal) ? "'" + a + "'" : a));
}

/// <summary>A server at a Streamable HTTP (or legacy SSE) endpoint.</summary>
/// <param name="Endpoint">The MCP endpoint.</param>
/// <param name="Headers">Headers sent with every request (e.g. Authorization).</param>
public sealed record HttpScanTarget(Uri Endpoint, IReadOnlyDictionary<string, string> Headers) : ScanTarget
{
    /// <inheritdoc/>
    public override string Describe() => "http: " + Endpoint.GetLeftPart(UriPartial.Path);
}
