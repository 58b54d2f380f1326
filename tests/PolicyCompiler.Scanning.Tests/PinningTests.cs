using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Scanning.Tests;

/// <summary>
/// <c>policyc scan --pin</c> then <c>policyc run</c> (the interpreter gateway) in front of the EKS-like
/// server, driven by the official SDK client: a tool whose description changes after the scan (a rug
/// pull, EKS_LIKE_SERVER_RUG_PULL) is hidden and refused, and its calls never reach the server.
/// </summary>
public sealed class PinningTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("policyc-pin-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string PolicycDll => Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");

    private async Task<string> ScanWithPinsAsync()
    {
        string policy = Path.Combine(_directory, "eks.json");
        var (exit, _, error) = await Policyc.RunAsync("scan", "-o", policy, "--pin", "--", "dotnet", Repo.EksLikeServerDll);
        Assert.True(exit == 0, error);
        Assert.Contains("(17 tool definitions pinned)", error, StringComparison.Ordinal);
        return policy;
    }

    private static async Task<McpClient> ConnectThroughGatewayAsync(string policy, string callLog, string? rugPull)
    {
        var environment = new Dictionary<string, string?> { ["EKS_LIKE_SERVER_CALL_LOG"] = callLog };
        if (rugPull is not null)
        {
            environment["EKS_LIKE_SERVER_RUG_PULL"] = rugPull;
        }
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Command = "dotnet",
            Arguments = [PolicycDll, "run", policy, "--state", "memory", "--", "dotnet", Repo.EksLikeServerDll],
            EnvironmentVariables = environment,
            Name = "pinning-test",
        });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        return await McpClient.CreateAsync(transport, cancellationToken: timeout.Token);
    }

    private static string Text(CallToolResult result) => Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;

    private static List<string> CallsArrived(string callLog) =>
        File.Exists(callLog) ? [.. File.ReadAllLines(callLog).Where(l => l.Length > 0).Select(l => (string)JsonNode.Parse(l)!["tool"]!)] : [];

    [Fact]
    public async Task ScanPin_WritesTheDefinitionHashOfEveryTool()
    {
        string policy = await ScanWithPinsAsync();
        PolicyParseResult parsed = PolicyParser.Parse(policy, File.ReadAllBytes(policy));
        Assert.Empty(parsed.Diagnostics);

        // The pin is the hash of the definition as the server lists it (the generated evaluator's
        // view of the same file is checked by the generator tests).
        var info = new Policy.Interpretation.PolicyInterpreter(parsed.Policy!).Policy;
        Assert.Equal(17, info.Pins.Count);
        JsonElement schema = JsonDocument.Parse("""{"type":"object"}""").RootElement;
        Assert.Equal(ToolDefinitionPin.Compute("get_pod_logs", "Get logs of a pod.", schema), info.Pins["get_pod_logs"]);
    }

    [Fact]
    public async Task ARugPull_IsHiddenAndRefused_AndNeverReachesTheServer()
    {
        string policy = await ScanWithPinsAsync();
        string callLog = Path.Combine(_directory, "calls.jsonl");
        await using McpClient client = await ConnectThroughGatewayAsync(policy, callLog, rugPull: "get_pod_logs");

        // Before any tools/list nothing is verified: pinned tools are refused with a way out.
        CallToolResult early = await client.CallToolAsync("list_k8s_resources");
        Assert.True(early.IsError);
        Assert.Contains("list the tools (tools/list) first", Text(early), StringComparison.Ordinal);

        IList<McpClientTool> tools = await client.ListToolsAsync();
        Assert.DoesNotContain(tools, t => t.Name == "get_pod_logs");
        Assert.Contains(tools, t => t.Name == "list_k8s_resources");
        Assert.Equal(16, tools.Count);

        CallToolResult pulled = await client.CallToolAsync("get_pod_logs");
        Assert.True(pulled.IsError);
        Assert.Contains("the definition of tool 'get_pod_logs' changed since it was pinned", Text(pulled), StringComparison.Ordinal);

        CallToolResult unchanged = await client.CallToolAsync("list_k8s_resources");
        Assert.NotEqual(true, unchanged.IsError);

        Assert.Equal(["list_k8s_resources"], CallsArrived(callLog));
    }

    [Fact]
    public async Task WithoutARugPull_EveryPinnedToolIsListedAndCallable()
    {
        string policy = await ScanWithPinsAsync();
        string callLog = Path.Combine(_directory, "calls.jsonl");
        await using McpClient client = await ConnectThroughGatewayAsync(policy, callLog, rugPull: null);

        IList<McpClientTool> tools = await client.ListToolsAsync();
        Assert.Equal(17, tools.Count);
        CallToolResult result = await client.CallToolAsync("get_pod_logs");
        Assert.NotEqual(true, result.IsError);
        Assert.Equal(["get_pod_logs"], CallsArrived(callLog));
    }
}
