using System.Text.Json;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.EndToEnd.Tests.Infrastructure;

namespace PolicyCompiler.EndToEnd.Tests;

/// <summary>
/// The native gateway (built from Policies/e2e.json) in front of the EKS-like sample server, driven by
/// the official C# SDK client. The server's call log proves which calls arrived.
/// </summary>
[Collection(NativeGatewayCollection.Name)]
public sealed class EksLikeServerTests(NativeGatewayFixture gateway) : IDisposable
{
    private readonly CallLog _calls = new();

    public void Dispose() => _calls.Dispose();

    private Task<McpClient> ConnectAsync(string grant = "team-a") =>
        McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "gateway",
            Command = gateway.GatewayPath,
            Arguments = ["stdio", "--grant", grant, "--", "dotnet", Repo.EksLikeServerDll],
            EnvironmentVariables = new Dictionary<string, string?> { ["EKS_LIKE_SERVER_CALL_LOG"] = _calls.Path },
        }));

    private static string Text(CallToolResult result) =>
        string.Concat(result.Content.OfType<TextContentBlock>().Select(t => t.Text));

    [Fact]
    public async Task Tools_list_shows_only_tools_the_policy_can_allow()
    {
        await using var client = await ConnectAsync();
        var names = (await client.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal).ToArray();

        // Listed: allowed entries, entries with a rule that can allow. Not listed: hidden, denied, and
        // every tool the default deny covers.
        Assert.Equal(["CreateCodeConnection", "get_pod_logs", "list_k8s_resources", "manage_k8s_resource"], names);
    }

    [Fact]
    public async Task Allowed_call_reaches_the_server_and_returns_its_result()
    {
        await using var client = await ConnectAsync();
        var result = await client.CallToolAsync("list_k8s_resources", new Dictionary<string, object?> { ["kind"] = "Pod" });

        Assert.False(result.IsError ?? false);
        Assert.Equal("""list_k8s_resources ok {"kind":"Pod"}""", Text(result));
        Assert.Equal(1, _calls.CountOf("list_k8s_resources"));
    }

    [Fact]
    public async Task Denied_call_never_reaches_the_server_and_the_agent_reads_why()
    {
        await using var client = await ConnectAsync();
        var result = await client.CallToolAsync("add_inline_policy", new Dictionary<string, object?> { ["role_name"] = "admin" });

        Assert.True(result.IsError);
        Assert.Contains("IAM changes are not allowed", Text(result));
        Assert.Contains("add_inline_policy", Text(result));
        var decision = result.Meta?["policycompiler/decision"];
        Assert.NotNull(decision);
        Assert.Equal("deny", (string?)decision!["decision"]);
        Assert.Equal("/tools/add_inline_policy/action", (string?)decision["rule"]);

        // Hidden and default-denied tools are refused as well.
        Assert.True((await client.CallToolAsync("get_policies_for_role", new Dictionary<string, object?>())).IsError);
        Assert.True((await client.CallToolAsync("apply_yaml", new Dictionary<string, object?>())).IsError);

        // The server never saw any of them (a later allowed call flushes the server's log order).
        await client.CallToolAsync("list_k8s_resources", new Dictionary<string, object?>());
        Assert.Equal(["list_k8s_resources"], _calls.Calls().Select(c => c.Tool).ToArray());
    }

    [Fact]
    public async Task Argument_conditions_decide_per_call()
    {
        await using var client = await ConnectAsync();

        var blocked = await client.CallToolAsync("get_pod_logs", new Dictionary<string, object?> { ["namespace"] = "kube-system", ["pod_name"] = "coredns" });
        var allowed = await client.CallToolAsync("get_pod_logs", new Dictionary<string, object?> { ["namespace"] = "shop", ["pod_name"] = "web" });
        var read = await client.CallToolAsync("manage_k8s_resource", new Dictionary<string, object?> { ["operation"] = "read", ["kind"] = "Pod" });
        var delete = await client.CallToolAsync("manage_k8s_resource", new Dictionary<string, object?> { ["operation"] = "delete", ["kind"] = "Pod" });

        Assert.True(blocked.IsError);
        Assert.Contains("kube-system logs are off limits", Text(blocked));
        Assert.False(allowed.IsError ?? false);
        Assert.False(read.IsError ?? false);
        Assert.True(delete.IsError);
        Assert.Contains("only reads are allowed", Text(delete));

        var arrived = _calls.Calls();
        Assert.Equal(2, arrived.Count);
        Assert.DoesNotContain(arrived, c => c.Arguments?["namespace"]?.GetValue<string>() == "kube-system");
        Assert.DoesNotContain(arrived, c => c.Arguments?["operation"]?.GetValue<string>() == "delete");
    }

    [Fact]
    public async Task Rate_limit_admits_max_per_window_then_refuses_with_retry_time()
    {
        await using var client = await ConnectAsync(grant: "limited-" + Guid.NewGuid().ToString("N"));
        var results = new List<CallToolResult>();
        for (int i = 0; i < 5; i++)
        {
            results.Add(await client.CallToolAsync("CreateCodeConnection", new Dictionary<string, object?> { ["repo"] = $"r{i}" }));
        }

        Assert.All(results.Take(3), r => Assert.False(r.IsError ?? false));
        Assert.All(results.Skip(3), r =>
        {
            Assert.True(r.IsError);
            var decision = r.Meta!["policycompiler/decision"]!;
            Assert.Equal("rate_limited", (string?)decision["decision"]);
            Assert.Equal("/tools/CreateCodeConnection/limits/0", (string?)decision["rule"]);
            Assert.Equal("createcodeconnection_rate", (string?)decision["counter"]);
            var retry = decision["retryAfterSeconds"]!.GetValue<double>();
            Assert.InRange(retry, 1, 60);
        });
        Assert.Equal(3, _calls.CountOf("CreateCodeConnection"));
    }
}
