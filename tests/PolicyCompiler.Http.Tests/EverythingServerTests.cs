using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>The SDK's HTTP client → the gateway → @modelcontextprotocol/server-everything in streamableHttp mode (SSE answers).</summary>
public sealed class EverythingServerTests : IAsyncLifetime
{
    private EverythingServer _server = null!;
    private TestGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        _server = await EverythingServer.StartAsync();
        _gateway = await TestGateway.StartAsync(_server.Url);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task ToolsList_InsideSse_IsFiltered()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        string[] names = (await client.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["echo", "get-sum", "trigger-long-running-operation"], names);
    }

    [Fact]
    public async Task AllowDenyAndConditions_AsOverStdio()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        CallToolResult echo = await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hi" });
        Assert.NotEqual(true, echo.IsError);
        Assert.Contains("hi", Assert.IsType<TextContentBlock>(echo.Content[0]).Text);

        CallToolResult env = await client.CallToolAsync("get-env");
        Assert.True(env.IsError);
        Assert.Contains("the environment holds secrets", Assert.IsType<TextContentBlock>(env.Content[0]).Text);

        Assert.True((await client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 2000, ["b"] = 1 })).IsError);
        CallToolResult sum = await client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 });
        Assert.NotEqual(true, sum.IsError);
        Assert.Contains("5", Assert.IsType<TextContentBlock>(sum.Content[0]).Text);
    }

    [Fact]
    public async Task ProgressNotifications_PassThroughAsTheyArrive()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<float>();
        var progress = new Progress(v => seen.Enqueue(v.Progress));
        CallToolResult result = await client.CallToolAsync(
            "trigger-long-running-operation",
            new Dictionary<string, object?> { ["duration"] = 0.3, ["steps"] = 3 },
            progress);
        Assert.NotEqual(true, result.IsError);

        // The server sends its last progress notification right before the result, and the SDK client stops
        // listening for a token once the result is in: only the earlier ones are certain to be reported.
        // The SDK client runs its handlers concurrently, so reports may interleave: compare in order of value.
        float[] values = seen.Order().ToArray();
        Assert.True(values.Length >= 2, $"progress seen: [{string.Join(", ", values)}]");
        Assert.Equal(new[] { 1f, 2f, 3f }.Take(values.Length), values);
    }

    [Fact]
    public async Task Delete_EndsTheSessionOnBothSides()
    {
        McpClient client = await Clients.ConnectAsync(_gateway.Url);
        await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "x" });
        Assert.Equal(1, _gateway.Gateway.ActiveSessions);
        await client.DisposeAsync();
        Assert.Equal(0, _gateway.Gateway.ActiveSessions);
    }

    private sealed class Progress(Action<ProgressNotificationValue> report) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value) => report(value);
    }
}
