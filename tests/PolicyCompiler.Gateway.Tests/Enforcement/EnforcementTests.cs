using System.Text.Json;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Gateway.Tests.Enforcement;

public class EnforcementTests
{
    private const string Ping = """{"jsonrpc":"2.0","id":"marker","method":"ping"}""";

    [Fact]
    public async Task AllowedCall_IsForwardedByteForByte_AndCommittedWhenAnswered()
    {
        var policy = new FakeEvaluator();
        await using var gateway = new GatewayHarness(policy);
        const string call = """{ "jsonrpc":"2.0", "id":1, "method":"tools/call", "params":{"name":"list_clusters","arguments":{"region" : "eu-west-1"}} }""";
        await gateway.ClientSendAsync(call);
        Assert.Equal(call, await gateway.UpstreamReceiveAsync());
        Assert.Equal(("list_clusters", """{"region" : "eu-west-1"}""", "alice", "s1"), Assert.Single(policy.Calls));

        const string answer = """{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}""";
        await gateway.UpstreamSendAsync(answer);
        Assert.Equal(answer, await gateway.ClientReceiveAsync());
        Assert.Equal(1, policy.Counters.Committed);
        Assert.Equal(0, policy.Counters.RolledBack);
    }

    [Fact]
    public async Task DeniedCall_IsNeverForwarded_AndTheClientGetsAToolError()
    {
        var policy = new FakeEvaluator();
        policy.Denied.Add("DeleteCluster");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"DeleteCluster","arguments":{}}}""");
        await gateway.ClientSendAsync(Ping);

        // The next thing the server sees is the ping: the call never arrived.
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());

        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        JsonElement root = reply.RootElement;
        Assert.Equal(5, root.GetProperty("id").GetInt32());
        JsonElement result = root.GetProperty("result");
        Assert.True(result.GetProperty("isError").GetBoolean());
        string text = result.GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.Equal("Blocked by policy: tool 'DeleteCluster' was denied: destructive tool", text);
        JsonElement meta = result.GetProperty("_meta").GetProperty("policycompiler/decision");
        Assert.Equal("deny", meta.GetProperty("decision").GetString());
        Assert.Equal("/tools/DeleteCluster/action", meta.GetProperty("rule").GetString());
        Assert.Equal("destructive tool", meta.GetProperty("reason").GetString());
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","method":"tools/call","params":{"name":"DeleteCluster","arguments":{}}}""")]
    [InlineData("""{"jsonrpc":"2.0","method":"tools/call","params":{"name":"list_clusters","arguments":{}}}""")]
    [InlineData("""{"params":{"name":"DeleteCluster"},"m\u0065thod":"tools\/call","jsonrpc":"2.0"}""")]
    public async Task ToolsCallWithoutAnId_IsDropped_NeverDecidedNorForwarded(string notification)
    {
        // A lenient server might run a tools/call that came as a notification: it must never get there.
        var policy = new FakeEvaluator();
        policy.Denied.Add("DeleteCluster");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync(notification);
        await gateway.ClientSendAsync(Ping);

        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        Assert.Empty(policy.Calls);
        Assert.Equal(0, policy.Counters.Committed);
    }

    [Fact]
    public async Task RateLimitedCall_SaysWhenToRetry()
    {
        var policy = new FakeEvaluator();
        policy.RateLimited.Add("CreateCodeConnection");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"CreateCodeConnection"}}""");
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        JsonElement result = reply.RootElement.GetProperty("result");
        Assert.Equal("c1", reply.RootElement.GetProperty("id").GetString());
        Assert.Equal(
            "Blocked by policy: tool 'CreateCodeConnection' is rate limited: at most 30 calls a minute (retry after 13 s)",
            result.GetProperty("content")[0].GetProperty("text").GetString());
        JsonElement meta = result.GetProperty("_meta").GetProperty("policycompiler/decision");
        Assert.Equal("rate_limited", meta.GetProperty("decision").GetString());
        Assert.Equal("rate", meta.GetProperty("counter").GetString());
        Assert.Equal(13, meta.GetProperty("retryAfterSeconds").GetInt32());
    }

    [Fact]
    public async Task ApprovalRequired_IsDeniedWithAClearReason()
    {
        var policy = new FakeEvaluator();
        policy.NeedsApproval.Add("Deploy");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"Deploy"}}""");
        await gateway.ClientSendAsync(Ping);
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        string text = reply.RootElement.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.Contains("approvals are not available in this build", text);
        Assert.Contains("a human must approve", text);
    }

    [Fact]
    public async Task EvaluatorFailure_FailsClosed()
    {
        var policy = new FakeEvaluator();
        policy.Throwing.Add("buggy");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"buggy"}}""");
        await gateway.ClientSendAsync(Ping);
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        JsonElement meta = reply.RootElement.GetProperty("result").GetProperty("_meta").GetProperty("policycompiler/decision");
        Assert.Equal("gateway:internal-error", meta.GetProperty("rule").GetString());
    }

    [Fact]
    public async Task ShadowMode_ForwardsDeniedCalls()
    {
        var policy = new FakeEvaluator(PolicyMode.Shadow);
        policy.Denied.Add("DeleteCluster");
        await using var gateway = new GatewayHarness(policy);
        const string call = """{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"DeleteCluster","arguments":{}}}""";
        await gateway.ClientSendAsync(call);
        Assert.Equal(call, await gateway.UpstreamReceiveAsync());
        Assert.Single(policy.Calls);
    }

    [Theory]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"DeleteCluster"}}]""", JsonRpcErrorCodes.InvalidRequest, null)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","\u006eame":"DeleteCluster"}}""", JsonRpcErrorCodes.InvalidRequest, 1)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"a":1,"a":2}}}""", JsonRpcErrorCodes.InvalidRequest, 1)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["DeleteCluster"]}}""", JsonRpcErrorCodes.InvalidParams, 1)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"DeleteCluster"}""", JsonRpcErrorCodes.ParseError, null)]
    public async Task BypassAttempts_AreAnsweredWithAnErrorAndNeverForwarded(string message, int code, int? id)
    {
        var policy = new FakeEvaluator();
        policy.Denied.Add("DeleteCluster");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync(message);
        await gateway.ClientSendAsync(Ping);
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        Assert.Empty(policy.Calls);

        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        Assert.Equal(code, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
        JsonElement replyId = reply.RootElement.GetProperty("id");
        if (id is null)
        {
            Assert.Equal(JsonValueKind.Null, replyId.ValueKind);
        }
        else
        {
            Assert.Equal(id, replyId.GetInt32());
        }
    }

    [Fact]
    public async Task EscapedToolName_IsDecidedOnWhatTheServerSees()
    {
        var policy = new FakeEvaluator();
        policy.Denied.Add("DeleteCluster");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"Delete\u0043luster"}}""");
        await gateway.ClientSendAsync(Ping);
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        Assert.Equal("DeleteCluster", Assert.Single(policy.Calls).Tool);
    }

    [Fact]
    public async Task EverythingElse_PassesUntouchedBothWays()
    {
        await using var gateway = new GatewayHarness(new FakeEvaluator());
        string[] fromClient =
        [
            """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{}},"clientInfo":{"name":"c","version":"1"}}}""",
            """{"jsonrpc":"2.0","method":"notifications/initialized"}""",
            """{ "jsonrpc" : "2.0" , "id" : 2 , "method" : "resources/read" , "params" : { "uri" : "file:///x" } }""",
            """{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"user"}}""",
            """{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p","_meta":{"progressToken":"t"}}}""",
        ];
        foreach (string line in fromClient)
        {
            await gateway.ClientSendAsync(line);
            Assert.Equal(line, await gateway.UpstreamReceiveAsync());
        }

        string[] fromServer =
        [
            """{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}""",
            """{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"total":2}}""",
            """{"jsonrpc":"2.0","id":0,"method":"roots/list"}""",
            """{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}""",
            """{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}}}}""",
        ];
        foreach (string line in fromServer)
        {
            await gateway.UpstreamSendAsync(line);
            Assert.Equal(line, await gateway.ClientReceiveAsync());
        }

        const string rootsAnswer = """{"jsonrpc":"2.0","id":0,"result":{"roots":[]}}""";
        await gateway.ClientSendAsync(rootsAnswer);
        Assert.Equal(rootsAnswer, await gateway.UpstreamReceiveAsync());
    }

    [Fact]
    public async Task RequestIdAlreadyInFlight_IsRefused()
    {
        var policy = new FakeEvaluator();
        await using var gateway = new GatewayHarness(policy);
        const string list = """{"jsonrpc":"2.0","id":4,"method":"tools/list"}""";
        await gateway.ClientSendAsync(list);
        Assert.Equal(list, await gateway.UpstreamReceiveAsync());
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x"}}""");
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        Assert.Equal(JsonRpcErrorCodes.InvalidRequest, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Empty(policy.Calls);
    }

    [Fact]
    public async Task OversizedMessage_IsRefusedWithItsId_AndTheNextMessageGoesThrough()
    {
        var policy = new FakeEvaluator();
        await using var gateway = new GatewayHarness(policy, new GatewayOptions { MaxMessageBytes = 256 });
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"x","arguments":{"blob":" """ + new string('z', 5000) + "\"}}}");
        await gateway.ClientSendAsync(Ping);
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        Assert.Equal(77, reply.RootElement.GetProperty("id").GetInt32());
        Assert.Equal(JsonRpcErrorCodes.InvalidRequest, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Empty(policy.Calls);
    }

    [Fact]
    public async Task UpstreamDeath_AnswersEveryPendingRequest_AndRollsBackCounters()
    {
        var policy = new FakeEvaluator();
        var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}""");
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":"two","method":"resources/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamReceiveAsync();
        await gateway.CloseUpstreamAsync();

        var ids = new HashSet<string>();
        for (int i = 0; i < 2; i++)
        {
            using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
            Assert.Equal(JsonRpcErrorCodes.UpstreamClosed, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
            ids.Add(reply.RootElement.GetProperty("id").ToString());
        }

        Assert.Equal(["1", "two"], ids.Order());
        Assert.Null(await gateway.ClientReceiveAsync()); // the client's output is completed
        GatewayRunResult result = await gateway.Run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(new GatewayRunResult(GatewayStop.UpstreamClosed, 2), result);
        Assert.Equal(1, policy.Counters.RolledBack);
        Assert.Equal(0, policy.Counters.Committed);
        await gateway.DisposeAsync();
    }

    [Fact]
    public async Task ClientClosing_ClosesTheUpstreamInput()
    {
        var gateway = new GatewayHarness(new FakeEvaluator());
        await gateway.ClientSendAsync(Ping);
        await gateway.CloseClientAsync();
        Assert.Equal(Ping, await gateway.UpstreamReceiveAsync());
        Assert.Null(await gateway.UpstreamReceiveAsync());
        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":"marker","result":{}}""");
        Assert.Equal("""{"jsonrpc":"2.0","id":"marker","result":{}}""", await gateway.ClientReceiveAsync());
        await gateway.CloseUpstreamAsync();
        Assert.Equal(new GatewayRunResult(GatewayStop.ClientClosed, 0), await gateway.Run.WaitAsync(TimeSpan.FromSeconds(20)));
    }
}
