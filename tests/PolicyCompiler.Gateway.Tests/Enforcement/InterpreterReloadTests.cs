using System.Text;
using System.Text.Json;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Gateway.Tests.TestSupport;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Tests.Enforcement;

/// <summary>The gateway with the real interpreter (what `policyc run` runs), including a reload that keeps counters.</summary>
public class InterpreterReloadTests
{
    private static PolicyDocument Parse(string json)
    {
        PolicyParseResult result = PolicyParser.Parse("test.json", Encoding.UTF8.GetBytes(json));
        Assert.NotNull(result.Policy);
        return result.Policy!;
    }

    private const string Limited = """
        { "version": "1", "name": "limited", "default": "deny",
          "tools": { "CreateCodeConnection": { "limits": [ { "counter": "c", "window": "minute", "max": 2, "scope": "grant" } ] } } }
        """;

    private static async Task<JsonElement> CallAsync(GatewayHarness gateway, int id, bool answer)
    {
        await gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"CreateCodeConnection\",\"arguments\":{}}}");
        if (answer)
        {
            await gateway.UpstreamReceiveAsync();
            await gateway.UpstreamSendAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"result\":{\"content\":[]}}");
        }

        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        return reply.RootElement.Clone();
    }

    [Fact]
    public async Task ReloadedPolicy_KeepsTheCounters()
    {
        var options = new PolicyEvaluatorOptions();
        var evaluator = new ReloadableEvaluator(new PolicyInterpreter(Parse(Limited), options));
        await using var gateway = new GatewayHarness(evaluator);

        Assert.False((await CallAsync(gateway, 1, answer: true)).GetProperty("result").TryGetProperty("isError", out _));
        Assert.False((await CallAsync(gateway, 2, answer: true)).GetProperty("result").TryGetProperty("isError", out _));

        // Same limit, a changed file (a description): the two calls already made still count.
        evaluator.Replace(new PolicyInterpreter(Parse(Limited.Replace("\"name\": \"limited\"", "\"name\": \"limited\", \"description\": \"v2\"")), options));
        JsonElement third = await CallAsync(gateway, 3, answer: false);
        JsonElement meta = third.GetProperty("result").GetProperty("_meta").GetProperty("policycompiler/decision");
        Assert.Equal("rate_limited", meta.GetProperty("decision").GetString());
        Assert.Equal("/tools/CreateCodeConnection/limits/0", meta.GetProperty("rule").GetString());
    }

    [Fact]
    public async Task DefaultDeny_BlocksUnknownTools_AndHidesThemFromTheList()
    {
        var evaluator = new PolicyInterpreter(Parse(Limited));
        await using var gateway = new GatewayHarness(evaluator);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"DeleteCluster"},{"name":"CreateCodeConnection"}]}}""");
        Assert.Equal("""{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"CreateCodeConnection"}]}}""", await gateway.ClientReceiveAsync());

        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"DeleteCluster"}}""");
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        Assert.Equal("/default", reply.RootElement.GetProperty("result").GetProperty("_meta").GetProperty("policycompiler/decision").GetProperty("rule").GetString());
    }
}
