using System.IO.Pipelines;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// <c>GATEWAY stdio --upstream URL</c>: the SDK's stdio-style stream client → the stdio gateway (in-process,
/// over in-memory pipes) → a C# SDK ASP.NET Core Streamable HTTP server on a loopback socket.
/// </summary>
public sealed class StdioUpstreamTests : IAsyncLifetime
{
    private const string UpstreamSecret = "Bearer upstream-secret";
    private readonly Pipe _clientToGateway = new();
    private readonly Pipe _gatewayToClient = new();
    private SdkHttpServer _server = null!;
    private Task<GatewayRunResult> _gateway = null!;

    public async Task InitializeAsync()
    {
        _server = await SdkHttpServer.StartAsync();
        _gateway = StdioToHttpGateway.RunAsync(
            _clientToGateway.Reader,
            _gatewayToClient.Writer,
            _server.Url,
            [new("Authorization", UpstreamSecret)],
            TestGateway.CreateEvaluator(),
            new GatewayOptions { Grant = "alice" });
    }

    public async Task DisposeAsync()
    {
        await _clientToGateway.Writer.CompleteAsync();
        await _gateway.WaitAsync(Clients.Timeout);
        await _server.DisposeAsync();
    }

    private Task<McpClient> ConnectAsync()
    {
        var transport = new StreamClientTransport(_clientToGateway.Writer.AsStream(), _gatewayToClient.Reader.AsStream());
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        return McpClient.CreateAsync(transport, cancellationToken: timeout.Token);
    }

    [Fact]
    public async Task ToolsList_IsFiltered_ByTheStdioPath()
    {
        await using McpClient client = await ConnectAsync();
        IList<McpClientTool> tools = await client.ListToolsAsync();
        string[] names = tools.Select(t => t.Name).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["CreateCodeConnection", "break_stream", "get_pod_logs", "list_k8s_resources", "slow_progress"], names);
        Assert.Equal("sdk-http-upstream", client.ServerInfo?.Name);
    }

    [Fact]
    public async Task AllowedCall_Arrives_DeniedCall_NeverDoes()
    {
        await using McpClient client = await ConnectAsync();
        CallToolResult allowed = await client.CallToolAsync("list_k8s_resources", new Dictionary<string, object?> { ["kind"] = "Pod" });
        Assert.NotEqual(true, allowed.IsError);
        Assert.Equal("list_k8s_resources ok", Assert.IsType<TextContentBlock>(allowed.Content[0]).Text);

        CallToolResult denied = await client.CallToolAsync("add_inline_policy", new Dictionary<string, object?> { ["role"] = "admin" });
        Assert.True(denied.IsError);
        Assert.Contains("IAM changes are not allowed", Assert.IsType<TextContentBlock>(denied.Content[0]).Text);
        Assert.True((await client.CallToolAsync("apply_yaml")).IsError);

        Assert.Equal(["list_k8s_resources"], _server.Calls);
        // Every upstream request carried the gateway's own credentials.
        Assert.NotEmpty(_server.AuthorizationHeaders);
        Assert.All(_server.AuthorizationHeaders, h => Assert.Equal(UpstreamSecret, h));
    }

    [Fact]
    public async Task SessionLimit_IsSettled_ThroughTheHttpResponses()
    {
        await using McpClient client = await ConnectAsync();
        Assert.NotEqual(true, (await client.CallToolAsync("get_pod_logs")).IsError);
        Assert.True((await client.CallToolAsync("get_pod_logs")).IsError);
        Assert.Equal(["get_pod_logs"], _server.Calls);
    }

    [Fact]
    public async Task SseProgress_ReachesTheClient_AndEndOfInput_DeletesTheSession()
    {
        var progress = new List<ProgressNotificationValue>();
        await using (McpClient client = await ConnectAsync())
        {
            CallToolResult result = await client.CallToolAsync(
                "slow_progress",
                progress: new SynchronousProgress(progress));
            Assert.Equal("slow_progress ok", Assert.IsType<TextContentBlock>(result.Content[0]).Text);
        }

        Assert.Equal(3, progress.Count);
        await _clientToGateway.Writer.CompleteAsync();
        GatewayRunResult run = await _gateway.WaitAsync(Clients.Timeout);
        Assert.Equal(GatewayStop.ClientClosed, run.Stop);
        Assert.Equal(1, _server.Deletes);
        // The stream for server-initiated messages was opened, and end of input closed it (the session ended).
        Assert.Equal(1, _server.Gets);
    }

    [Fact]
    public async Task UnreachableUpstream_AnswersRequests_WithAnError()
    {
        var input = new Pipe();
        var output = new Pipe();
        Task<GatewayRunResult> gateway = StdioToHttpGateway.RunAsync(
            input.Reader, output.Writer, new Uri("http://127.0.0.1:9/mcp"), [], TestGateway.CreateEvaluator(), new GatewayOptions());
        await input.Writer.WriteAsync("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}\n"u8.ToArray());
        using var reader = new StreamReader(output.Reader.AsStream());
        string? line = await reader.ReadLineAsync().WaitAsync(Clients.Timeout);
        Assert.NotNull(line);
        Assert.Contains("\"id\":7", line, StringComparison.Ordinal);
        Assert.Contains("\"error\"", line, StringComparison.Ordinal);
        await input.Writer.CompleteAsync();
        Assert.Equal(GatewayStop.ClientClosed, (await gateway.WaitAsync(Clients.Timeout)).Stop);
    }

    [Fact]
    public async Task PolicycRun_AsACommand_OfTheSdkStdioClient()
    {
        string directory = Path.Combine(Path.GetTempPath(), "policycompiler-stdio-upstream-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            string policy = Path.Combine(directory, "http-tests.json");
            await File.WriteAllTextAsync(policy, TestGateway.Policy);
            string policyc = Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");
            var transport = new StdioClientTransport(new StdioClientTransportOptions
            {
                Command = "dotnet",
                Arguments = [policyc, "run", policy, "--state", "memory", "--upstream", _server.Url.ToString(), "--upstream-header", "Authorization: " + UpstreamSecret],
            });
            using var timeout = new CancellationTokenSource(Clients.Timeout);
            await using (McpClient client = await McpClient.CreateAsync(transport, cancellationToken: timeout.Token))
            {
                IList<McpClientTool> tools = await client.ListToolsAsync(cancellationToken: timeout.Token);
                Assert.DoesNotContain(tools, t => t.Name == "get_policies_for_role");
                Assert.NotEqual(true, (await client.CallToolAsync("list_k8s_resources", cancellationToken: timeout.Token)).IsError);
                Assert.True((await client.CallToolAsync("add_inline_policy", cancellationToken: timeout.Token)).IsError);
            }

            Assert.Equal(["list_k8s_resources"], _server.Calls);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private sealed class SynchronousProgress(List<ProgressNotificationValue> values) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value)
        {
            lock (values)
            {
                values.Add(value);
            }
        }
    }
}
