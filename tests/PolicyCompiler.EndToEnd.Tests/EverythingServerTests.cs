using System.Text.Json;
// Roots are deprecated in 2026-07-28 but still sent by server-everything under 2025-xx revisions.
#pragma warning disable MCP9005
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.EndToEnd.Tests.Infrastructure;

namespace PolicyCompiler.EndToEnd.Tests;

/// <summary>
/// The native gateway in front of @modelcontextprotocol/server-everything (npm, pinned): allowed calls
/// return exactly what direct calls return, progress notifications and server→client requests pass,
/// and the policy still bites.
/// </summary>
[Collection(NativeGatewayCollection.Name)]
public sealed class EverythingServerTests(NativeGatewayFixture gateway)
{
    private int _rootsRequests;

    private Task<McpClient> ConnectAsync(bool throughGateway)
    {
        var server = Repo.NpmBin("mcp-server-everything");
        var options = new StdioClientTransportOptions
        {
            Name = "everything",
            Command = throughGateway ? gateway.GatewayPath : server,
            Arguments = throughGateway ? ["stdio", "--", server, "stdio"] : ["stdio"],
        };
        var clientOptions = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                // The server asks for roots right after initialize (a server→client request).
                RootsHandler = (_, _) =>
                {
                    Interlocked.Increment(ref _rootsRequests);
                    return ValueTask.FromResult(new ListRootsResult { Roots = [new Root { Uri = "file:///tmp", Name = "tmp" }] });
                },
            },
        };
        return McpClient.CreateAsync(new StdioClientTransport(options), clientOptions);
    }

    private static string Json(CallToolResult result) =>
        JsonSerializer.Serialize(new { result.Content, result.StructuredContent, result.IsError }, McpJsonUtilities.DefaultOptions);

    [Fact]
    public async Task Allowed_calls_return_what_direct_calls_return()
    {
        await using var direct = await ConnectAsync(throughGateway: false);
        await using var proxied = await ConnectAsync(throughGateway: true);

        foreach (var (tool, args) in new (string, Dictionary<string, object?>)[]
        {
            ("echo", new() { ["message"] = "héllo \"gateway\" \u2603" }),
            ("get-sum", new() { ["a"] = 2, ["b"] = 40 }),
            ("get-structured-content", new() { ["location"] = "Chicago" }),
        })
        {
            var expected = Json(await direct.CallToolAsync(tool, args));
            var actual = Json(await proxied.CallToolAsync(tool, args));
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public async Task Progress_notifications_pass_through()
    {
        await using var client = await ConnectAsync(throughGateway: true);
        // Observed with a session-wide handler: the SDK dispatches notifications concurrently and drops the
        // call's own progress handler when the call returns, so a late-dispatched update could miss that one.
        var seen = new List<double>();
        await using var observer = client.RegisterNotificationHandler(NotificationMethods.ProgressNotification, (notification, _) =>
        {
            lock (seen) seen.Add(notification.Params!["progress"]!.GetValue<double>());
            return ValueTask.CompletedTask;
        });

        var result = await client.CallToolAsync(
            "trigger-long-running-operation",
            new Dictionary<string, object?> { ["duration"] = 1, ["steps"] = 3 },
            new SynchronousProgress([])); // a progress handler makes the SDK send a progressToken

        Assert.False(result.IsError ?? false);
        for (int i = 0; i < 200 && Count() < 3; i++) await Task.Delay(50);
        lock (seen)
        {
            Assert.Equal([1d, 2d, 3d], seen.Order().ToArray());
        }

        int Count()
        {
            lock (seen) return seen.Count;
        }
    }

    [Fact]
    public async Task Server_to_client_requests_reach_the_client()
    {
        await using var client = await ConnectAsync(throughGateway: true);
        // A call round trip after initialize; by then the server's roots/list has been answered.
        await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "x" });
        for (int i = 0; i < 100 && Volatile.Read(ref _rootsRequests) == 0; i++) await Task.Delay(50);

        Assert.True(Volatile.Read(ref _rootsRequests) >= 1);
    }

    [Fact]
    public async Task Policy_denies_and_hides_on_a_third_party_server()
    {
        await using var client = await ConnectAsync(throughGateway: true);
        var tools = (await client.ListToolsAsync()).Select(t => t.Name).ToHashSet();
        var env = await client.CallToolAsync("get-env", new Dictionary<string, object?>());
        var bigSum = await client.CallToolAsync("get-sum", new Dictionary<string, object?> { ["a"] = 2000, ["b"] = 1 });
        var image = await client.CallToolAsync("get-tiny-image", new Dictionary<string, object?>());

        Assert.Contains("echo", tools);
        Assert.DoesNotContain("get-env", tools);
        Assert.DoesNotContain("get-tiny-image", tools);
        Assert.True(env.IsError);
        Assert.Contains("the environment holds secrets", string.Concat(env.Content.OfType<TextContentBlock>().Select(t => t.Text)));
        Assert.True(bigSum.IsError);
        Assert.True(image.IsError);
    }

    private sealed class SynchronousProgress(List<ProgressNotificationValue> sink) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value)
        {
            lock (sink) sink.Add(value);
        }
    }
}
