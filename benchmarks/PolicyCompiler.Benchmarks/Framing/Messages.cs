using System.Text;

namespace PolicyCompiler.Benchmarks.Framing;

/// <summary>The JSON-RPC lines the framing benchmarks feed the gateway (what an MCP client sends).</summary>
public static class Messages
{
    /// <summary>A <c>tools/call</c> the benchmark policy (bench.json) allows by exact name.</summary>
    public static readonly byte[] ToolCall = Encoding.UTF8.GetBytes(
        """{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"list_k8s_resources","arguments":{"cluster_name":"prod-eu-1","kind":"Pod","api_version":"v1","namespace":"shop","label_selector":"app=web"},"_meta":{"progressToken":42}}}""");

    /// <summary>A progress notification: not a tool call, forwarded untouched.</summary>
    public static readonly byte[] Notification = Encoding.UTF8.GetBytes(
        """{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":50,"total":100,"message":"listing pods"}}""");

    /// <summary><paramref name="message"/> followed by the newline that ends it on the wire.</summary>
    public static byte[] Line(byte[] message) => [.. message, (byte)'\n'];
}
