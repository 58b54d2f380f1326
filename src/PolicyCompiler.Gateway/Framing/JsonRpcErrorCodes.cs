namespace PolicyCompiler.Gateway.Framing;

/// <summary>
/// JSON-RPC error codes the gateway answers with (docs/gateway.md, "Error codes"). The -32700…-32600
/// range is JSON-RPC 2.0 §5.1; -32000…-32019 are implementation-defined server errors (the MCP
/// 2026-07-28 revision reserves -32020…-32099 for the specification, so the gateway stays below).
/// </summary>
public static class JsonRpcErrorCodes
{
    /// <summary>The line is not JSON. Sent with id null.</summary>
    public const int ParseError = -32700;

    /// <summary>Not a valid JSON-RPC message: a batch, a duplicate key, an oversized message, an id already in flight.</summary>
    public const int InvalidRequest = -32600;

    /// <summary>A tools/call whose params, name or arguments are malformed (wrong type, duplicate key in the arguments).</summary>
    public const int InvalidParams = -32602;

    /// <summary>The upstream MCP server exited (or closed its output) before answering this request.</summary>
    public const int UpstreamClosed = -32001;

    /// <summary>The upstream's response to this request exceeded the size limit and was discarded.</summary>
    public const int ResponseTooLarge = -32002;

    /// <summary>The upstream server refused the gateway's own credentials (HTTP 401/403 to <c>--upstream-header</c>).</summary>
    public const int UpstreamUnauthorized = -32003;
}
