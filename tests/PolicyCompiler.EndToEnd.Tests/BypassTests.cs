using System.Text.Json.Nodes;
using PolicyCompiler.EndToEnd.Tests.Infrastructure;

namespace PolicyCompiler.EndToEnd.Tests;

/// <summary>
/// Attempts to slip a denied call past the native gateway with raw JSON an SDK would never send.
/// Each one must be refused with a JSON-RPC error or a policy denial, must not kill the gateway,
/// and must never reach the server (its call log is the proof).
/// </summary>
[Collection(NativeGatewayCollection.Name)]
public sealed class BypassTests(NativeGatewayFixture gateway) : IDisposable
{
    private readonly CallLog _calls = new();

    public void Dispose() => _calls.Dispose();

    private RawSession Start(params string[] extra) => RawSession.Start(
        gateway.GatewayPath,
        ["stdio", .. extra, "--", "dotnet", Repo.EksLikeServerDll],
        new Dictionary<string, string> { ["EKS_LIKE_SERVER_CALL_LOG"] = _calls.Path });

    /// <summary>After an attack, the gateway still works and the server saw only the allowed probe.</summary>
    private async Task AssertStillServingAndNothingLeaked(RawSession session)
    {
        await session.SendAsync("""{"jsonrpc":"2.0","id":"probe","method":"tools/call","params":{"name":"list_k8s_resources","arguments":{}}}""");
        var probe = await session.ReadResponseAsync("probe");
        Assert.Equal(false, (bool?)probe["result"]!["isError"]);
        Assert.Equal(["list_k8s_resources"], _calls.Calls().Select(c => c.Tool).ToArray());
    }

    private static void AssertRefused(JsonObject response)
    {
        if (response["error"] is JsonObject error)
        {
            Assert.True(error["code"]!.GetValue<int>() < 0);
            return;
        }
        Assert.Equal(true, (bool?)response["result"]!["isError"]);
    }

    [Theory]
    [InlineData("duplicate name, denied last", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_k8s_resources","name":"add_inline_policy","arguments":{}}}""")]
    [InlineData("duplicate name, denied first", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"add_inline_policy","name":"list_k8s_resources","arguments":{}}}""")]
    [InlineData("escaped duplicate key", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_k8s_resources","\u006eame":"add_inline_policy","arguments":{}}}""")]
    [InlineData("duplicate params", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"list_k8s_resources"},"params":{"name":"add_inline_policy"}}""")]
    [InlineData("duplicate method", """{"jsonrpc":"2.0","id":7,"method":"ping","method":"tools/call","params":{"name":"add_inline_policy","arguments":{}}}""")]
    [InlineData("escaped tool name", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"\u0061dd_inline_policy","arguments":{}}}""")]
    [InlineData("escaped method", """{"jsonrpc":"2.0","id":7,"method":"tools\/c\u0061ll","params":{"name":"add_inline_policy","arguments":{}}}""")]
    [InlineData("case variant of a denied tool", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"Add_Inline_Policy","arguments":{}}}""")]
    [InlineData("duplicate argument key", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_pod_logs","arguments":{"namespace":"shop","namespace":"kube-system"}}}""")]
    [InlineData("argument of the wrong type", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"manage_k8s_resource","arguments":{"operation":["read"]}}}""")]
    [InlineData("params not an object", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":["add_inline_policy"]}""")]
    [InlineData("name not a string", """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":["add_inline_policy"],"arguments":{}}}""")]
    public async Task Smuggled_call_is_refused(string attack, string line)
    {
        _ = attack;
        await using var session = Start();
        await session.InitializeAsync();
        await session.SendAsync(line);
        AssertRefused(await session.ReadResponseAsync(7));
        await AssertStillServingAndNothingLeaked(session);
    }

    [Fact]
    public async Task Batch_is_rejected_as_a_whole()
    {
        await using var session = Start();
        await session.InitializeAsync();
        await session.SendAsync("""[{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"add_inline_policy","arguments":{}}},{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"list_k8s_resources","arguments":{}}}]""");
        var skipped = new List<JsonObject>();
        await session.SendAsync("""{"jsonrpc":"2.0","id":"probe0","method":"ping"}""");
        await session.ReadResponseAsync("probe0", skipped);
        var error = Assert.Single(skipped, m => m["error"] is not null);
        Assert.Equal(-32600, error["error"]!["code"]!.GetValue<int>());
        await AssertStillServingAndNothingLeaked(session);
    }

    [Fact]
    public async Task Malformed_json_gets_a_parse_error_and_the_session_continues()
    {
        await using var session = Start();
        await session.InitializeAsync();
        await session.SendAsync("""{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"add_inline_policy" """);
        var skipped = new List<JsonObject>();
        await session.SendAsync("""{"jsonrpc":"2.0","id":"probe0","method":"ping"}""");
        await session.ReadResponseAsync("probe0", skipped);
        var parseError = Assert.Single(skipped, m => m["error"] is not null);
        Assert.Equal(-32700, parseError["error"]!["code"]!.GetValue<int>());
        Assert.Null(parseError["id"]);
        await AssertStillServingAndNothingLeaked(session);
    }

    [Fact]
    public async Task Oversized_message_is_refused_and_the_next_one_is_served()
    {
        await using var session = Start("--max-message-bytes", "4096");
        await session.InitializeAsync();
        var padding = new string('x', 10_000);
        await session.SendAsync("{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{\"name\":\"add_inline_policy\",\"arguments\":{\"pad\":\"" + padding + "\"}}}");
        var skipped = new List<JsonObject>();
        await session.SendAsync("""{"jsonrpc":"2.0","id":"probe0","method":"ping"}""");
        await session.ReadResponseAsync("probe0", skipped);
        Assert.Contains(skipped, m => m["error"] is JsonObject e && e["code"]!.GetValue<int>() < 0);
        await AssertStillServingAndNothingLeaked(session);
    }
}
