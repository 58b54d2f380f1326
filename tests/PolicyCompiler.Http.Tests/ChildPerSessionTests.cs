using System.Net;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// <c>GATEWAY http -- COMMAND</c>: the SDK's HTTP client → the gateway (in-process) → one stdio EKS-like
/// server process per MCP session, ended by DELETE.
/// </summary>
public sealed class ChildPerSessionTests : IAsyncLifetime
{
    private readonly string _callLog = Path.Combine(Path.GetTempPath(), "policycompiler-child-calls-" + Guid.NewGuid().ToString("N") + ".jsonl");
    private ChildProcessHandler _children = null!;
    private HttpGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        string server = Path.Combine(Repo.Root, "tests", "Servers", "EksLikeServer", "bin", Repo.Configuration, "net10.0", "EksLikeServer.dll");
        ILogger logger = new StderrLoggerProvider(LogLevel.Warning, "child-test-gateway").CreateLogger("gateway");
        // The children inherit this (only the EKS-like server reads it); each test class instance has its own file.
        _children = new ChildProcessHandler("sh", ["-c", $"EKS_LIKE_SERVER_CALL_LOG='{_callLog}' exec dotnet '{server}'"], TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(5), logger);
        var options = new HttpGatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Upstream = new Uri("http://stdio-child.invalid/mcp"),
        };
        _gateway = await HttpGateway.StartAsync(options, TestGateway.CreateEvaluator(), null, logger, _children);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        Assert.Equal(0, _children.Children);
        File.Delete(_callLog);
    }

    [Fact]
    public async Task EachSession_HasItsOwnChild_PolicyEnforced_DeleteEndsIt()
    {
        await using (McpClient alice = await Clients.ConnectAsync(_gateway.Url, standaloneGet: false))
        await using (McpClient bob = await Clients.ConnectAsync(_gateway.Url, standaloneGet: false))
        {
            Assert.Equal(2, _children.Children);
            Assert.Equal("eks-like-server", alice.ServerInfo?.Name);
            IList<McpClientTool> tools = await alice.ListToolsAsync();
            Assert.Contains(tools, t => t.Name == "list_k8s_resources");
            Assert.DoesNotContain(tools, t => t.Name == "get_policies_for_role");

            CallToolResult allowed = await alice.CallToolAsync("list_k8s_resources", new Dictionary<string, object?> { ["kind"] = "Pod" });
            Assert.NotEqual(true, allowed.IsError);
            Assert.StartsWith("list_k8s_resources ok", Assert.IsType<TextContentBlock>(allowed.Content[0]).Text, StringComparison.Ordinal);
            CallToolResult denied = await bob.CallToolAsync("add_inline_policy", new Dictionary<string, object?> { ["role"] = "admin" });
            Assert.True(denied.IsError);
            Assert.Contains("IAM changes are not allowed", Assert.IsType<TextContentBlock>(denied.Content[0]).Text);
        }

        string calls = File.Exists(_callLog) ? await File.ReadAllTextAsync(_callLog) : string.Empty;
        Assert.Contains("list_k8s_resources", calls, StringComparison.Ordinal);
        Assert.DoesNotContain("add_inline_policy", calls, StringComparison.Ordinal);

        // The clients' DELETEs ended both children (polled: the DELETE is answered after the child exits, but the SDK does not wait for it).
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        while (_children.Children > 0)
        {
            await Task.Delay(50, timeout.Token);
        }
    }

    [Fact]
    public async Task IdleChild_IsReaped()
    {
        string server = Path.Combine(Repo.Root, "tests", "Servers", "EksLikeServer", "bin", Repo.Configuration, "net10.0", "EksLikeServer.dll");
        ILogger logger = new StderrLoggerProvider(LogLevel.None, "child-test-gateway").CreateLogger("gateway");
        using var children = new ChildProcessHandler("dotnet", [server], TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5), logger);
        var options = new HttpGatewayOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), Upstream = new Uri("http://stdio-child.invalid/mcp") };
        await using HttpGateway gateway = await HttpGateway.StartAsync(options, TestGateway.CreateEvaluator(), null, logger, children);
        await using McpClient client = await Clients.ConnectAsync(gateway.Url, standaloneGet: false);
        Assert.Equal("eks-like-server", client.ServerInfo?.Name); // a child answered (the reaper may already have ended it)
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        while (children.Children > 0)
        {
            await Task.Delay(50, timeout.Token);
        }
    }
}
