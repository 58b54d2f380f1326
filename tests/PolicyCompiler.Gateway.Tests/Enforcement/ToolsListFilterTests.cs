using System.Text.Json;
using PolicyCompiler.Gateway.Tests.TestSupport;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Gateway.Tests.Enforcement;

public class ToolsListFilterTests
{
    private static FakeEvaluator Policy()
    {
        var policy = new FakeEvaluator();
        policy.Hidden.Add("secret");
        policy.Denied.Add("DeleteCluster");
        return policy;
    }

    [Fact]
    public async Task HiddenAndDeniedTools_AreRemoved_EverythingElseKeptByteForByte()
    {
        await using var gateway = new GatewayHarness(Policy());
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamSendAsync(
            """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret","inputSchema":{}},{"name":"list","inputSchema":{"type":"object"}} , {"name":"Delete\u0043luster"},{"description":"x","name":"get"}],"nextCursor":"page2"}}""");
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"list","inputSchema":{"type":"object"}},{"description":"x","name":"get"}],"nextCursor":"page2"}}""",
            await gateway.ClientReceiveAsync());
    }

    [Fact]
    public async Task EveryPage_IsFiltered()
    {
        await using var gateway = new GatewayHarness(Policy());
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"secret"}],"nextCursor":"c2"}}""");
        Assert.Equal("""{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"nextCursor":"c2"}}""", await gateway.ClientReceiveAsync());

        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"c2"}}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"DeleteCluster"},{"name":"secret"}]}}""");
        Assert.Equal("""{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}""", await gateway.ClientReceiveAsync());
    }

    [Fact]
    public async Task ServerRequestWithTheSameId_DoesNotStealTheToolsListResponse()
    {
        await using var gateway = new GatewayHarness(Policy());
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();

        // The server's own request and the client's answer reuse id 1 in the other direction.
        const string rootsRequest = """{"jsonrpc":"2.0","id":1,"method":"roots/list"}""";
        await gateway.UpstreamSendAsync(rootsRequest);
        Assert.Equal(rootsRequest, await gateway.ClientReceiveAsync());
        const string rootsAnswer = """{"jsonrpc":"2.0","id":1,"result":{"roots":[]}}""";
        await gateway.ClientSendAsync(rootsAnswer);
        Assert.Equal(rootsAnswer, await gateway.UpstreamReceiveAsync());

        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret"},{"name":"b"}]}}""");
        Assert.Equal("""{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"b"}]}}""", await gateway.ClientReceiveAsync());
    }

    [Fact]
    public async Task AmbiguousToolEntries_AreRemoved()
    {
        await using var gateway = new GatewayHarness(Policy());
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":"l","method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":"l","result":{"tools":[{"name":"a","name":"secret"},{"name":7},"str",{"name":"ok"}]}}""");
        Assert.Equal("""{"jsonrpc":"2.0","id":"l","result":{"tools":[{"name":"ok"}]}}""", await gateway.ClientReceiveAsync());
    }

    [Fact]
    public async Task ShadowMode_DoesNotFilter()
    {
        var policy = new FakeEvaluator(PolicyMode.Shadow);
        policy.Hidden.Add("secret");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        const string answer = """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"secret"}]}}""";
        await gateway.UpstreamSendAsync(answer);
        Assert.Equal(answer, await gateway.ClientReceiveAsync());
    }

    [Fact]
    public async Task FilteredResponse_IsValidJson()
    {
        await using var gateway = new GatewayHarness(Policy());
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamSendAsync("""{"result":{"tools":[ {"name":"x"} , {"name":"secret"} , {"name":"y"} ]},"jsonrpc":"2.0","id":1}""");
        using JsonDocument document = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        Assert.Equal(["x", "y"], document.RootElement.GetProperty("result").GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("name").GetString()));
    }
}
