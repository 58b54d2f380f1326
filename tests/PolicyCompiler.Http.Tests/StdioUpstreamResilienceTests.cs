using System.IO.Pipelines;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// <c>stdio --upstream URL</c> when the upstream misbehaves as the spec allows: it ends the session (404: the
/// gateway starts a new one with the client's initialize), closes SSE streams after an event id (resumed with
/// <c>Last-Event-ID</c> after <c>retry:</c>), or refuses the gateway's credentials (a clear error).
/// </summary>
public sealed class StdioUpstreamResilienceTests
{
    private const string Notification1 = """{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"one"}}""";
    private const string Notification2 = """{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"two"}}""";

    [Fact]
    public async Task SdkServerRestarted_TheSessionIsStartedAgain_AndTheCallGoesThrough()
    {
        SdkHttpServer first = await SdkHttpServer.StartAsync();
        int port = first.Url.Port;
        var toGateway = new Pipe();
        var fromGateway = new Pipe();
        Task<GatewayRunResult> gateway = StdioToHttpGateway.RunAsync(
            toGateway.Reader, fromGateway.Writer, first.Url, [], TestGateway.CreateEvaluator(), new GatewayOptions { Grant = "alice" });
        SdkHttpServer? second = null;
        try
        {
            var transport = new StreamClientTransport(toGateway.Writer.AsStream(), fromGateway.Reader.AsStream());
            using var timeout = new CancellationTokenSource(Clients.Timeout);
            await using (McpClient client = await McpClient.CreateAsync(transport, cancellationToken: timeout.Token))
            {
                Assert.NotEqual(true, (await client.CallToolAsync("list_k8s_resources", cancellationToken: timeout.Token)).IsError);
                await first.DisposeAsync();

                // A new server process on the same address knows nothing of the old session: it answers 404.
                second = await SdkHttpServer.StartAsync(port);
                CallToolResult again = await client.CallToolAsync("list_k8s_resources", cancellationToken: timeout.Token);
                Assert.NotEqual(true, again.IsError);
                Assert.Equal("list_k8s_resources ok", Assert.IsType<TextContentBlock>(again.Content[0]).Text);
                Assert.Equal(["list_k8s_resources"], second.Calls);

                // The enforcement is unchanged in the new session.
                Assert.True((await client.CallToolAsync("add_inline_policy", cancellationToken: timeout.Token)).IsError);
                Assert.Equal(["list_k8s_resources"], second.Calls);

                // The stream for server-initiated messages was reopened in the new session.
                while (second.Gets == 0)
                {
                    await Task.Delay(20, timeout.Token);
                }
            }

            await toGateway.Writer.CompleteAsync();
            Assert.Equal(GatewayStop.ClientClosed, (await gateway.WaitAsync(Clients.Timeout)).Stop);
            Assert.Equal(1, second.Deletes); // the new session was the one ended
        }
        finally
        {
            await toGateway.Writer.CompleteAsync();
            if (second is not null)
            {
                await second.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task SessionEnded_ReplaysInitializeAndInitialized_ThenTheMessage_AndTheClientSeesOnlyItsAnswer()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        await using var bridge = new RawStdioBridge(upstream.Url);
        await bridge.HandshakeAsync();
        await bridge.SendCallAsync(2, "list_k8s_resources");
        Assert.Equal("list_k8s_resources ok", (await bridge.ReceiveResponseAsync(2))["result"]!["content"]![0]!["text"]!.GetValue<string>());

        upstream.Live.Clear(); // the server ends session s1
        int before = upstream.Requests.Count;
        await bridge.SendCallAsync(3, "list_k8s_resources");
        var others = new List<JsonNode>();
        JsonNode answer = await bridge.ReceiveResponseAsync(3, others);
        Assert.Equal("list_k8s_resources ok", answer["result"]!["content"]![0]!["text"]!.GetValue<string>());
        Assert.Empty(others); // the replayed initialize's result is not passed on

        var after = upstream.Requests.Skip(before).Where(r => r.Method == "POST").Select(r => $"{r.RpcMethod} {r.Session ?? "-"}").ToArray();
        Assert.Equal(["tools/call s1", "initialize -", "notifications/initialized s2", "tools/call s2"], after);
    }

    [Fact]
    public async Task SessionEnded_AndNoNewOne_TheRequestGetsAClearError_AndTheNextMessageTriesAgain()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        bool refuse = false;
        upstream.Script = (context, message) =>
        {
            if (refuse && message?["method"]?.GetValue<string>() == "initialize")
            {
                context.Response.StatusCode = 503;
                return Task.FromResult(true);
            }

            return Task.FromResult(false);
        };
        await using var bridge = new RawStdioBridge(upstream.Url);
        await bridge.HandshakeAsync();

        refuse = true;
        upstream.Live.Clear();
        await bridge.SendCallAsync(2, "list_k8s_resources");
        JsonNode error = (await bridge.ReceiveResponseAsync(2))["error"]!;
        Assert.Equal(-32001, error["code"]!.GetValue<int>());
        Assert.Contains("ended the MCP session", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("HTTP 503", error["message"]!.GetValue<string>(), StringComparison.Ordinal);

        refuse = false;
        await bridge.SendCallAsync(3, "list_k8s_resources");
        Assert.Equal("list_k8s_resources ok", (await bridge.ReceiveResponseAsync(3))["result"]!["content"]![0]!["text"]!.GetValue<string>());
    }

    [Fact]
    public async Task GetStreamDropped_IsReopenedAfterRetry_WithLastEventId()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        int gets = 0;
        upstream.Script = async (context, _) =>
        {
            if (!HttpMethods.IsGet(context.Request.Method))
            {
                return false;
            }

            int n = Interlocked.Increment(ref gets);
            ScriptedUpstream.StartEventStream(context.Response);
            if (n == 1)
            {
                // One event, a short reconnection time, then the server closes the connection.
                await ScriptedUpstream.WriteEventAsync(context.Response, "retry: 20\nid: e1\ndata: " + Notification1);
                return true;
            }

            await ScriptedUpstream.WriteEventAsync(context.Response, "id: e2\ndata: " + Notification2);
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }

            return true;
        };
        await using var bridge = new RawStdioBridge(upstream.Url);
        await bridge.HandshakeAsync();
        Assert.Equal("one", (await bridge.ReceiveAsync())["params"]!["data"]!.GetValue<string>());
        Assert.Equal("two", (await bridge.ReceiveAsync())["params"]!["data"]!.GetValue<string>());

        string[] lastEventIds = upstream.Requests.Where(r => r.Method == "GET").Select(r => r.LastEventId ?? "(none)").ToArray();
        Assert.Equal(["(none)", "e1"], lastEventIds);
    }

    [Fact]
    public async Task PostStreamClosedBeforeTheResponse_IsResumedWithGet_AndTheResponseArrives()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        upstream.Script = async (context, message) =>
        {
            if (message?["params"]?["name"]?.GetValue<string>() == "slow_progress")
            {
                // A priming event (an id, empty data) with retry:, a notification, then the connection closes (polling, 2025-11-25).
                ScriptedUpstream.StartEventStream(context.Response);
                await ScriptedUpstream.WriteEventAsync(context.Response, "id: p1\nretry: 20\ndata: ");
                await ScriptedUpstream.WriteEventAsync(context.Response, "id: p2\ndata: " + Notification1);
                return true;
            }

            if (HttpMethods.IsGet(context.Request.Method) && context.Request.Headers["Last-Event-ID"] == "p2")
            {
                ScriptedUpstream.StartEventStream(context.Response);
                await ScriptedUpstream.WriteEventAsync(context.Response, "id: p3\ndata: " + ScriptedUpstream.ToolResult(7, "slow_progress ok").ToJsonString());
                return true;
            }

            return false;
        };
        await using var bridge = new RawStdioBridge(upstream.Url);
        await bridge.HandshakeAsync();
        await bridge.SendCallAsync(7, "slow_progress");
        var before = new List<JsonNode>();
        JsonNode answer = await bridge.ReceiveResponseAsync(7, before);
        Assert.Equal("slow_progress ok", answer["result"]!["content"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("one", Assert.Single(before)["params"]!["data"]!.GetValue<string>()); // the priming event carried nothing
        Assert.Contains(upstream.Requests, r => r.Method == "GET" && r.LastEventId == "p2");
    }

    [Fact]
    public async Task PostStreamBroken_WithoutRetry_IsAnErrorAtOnce_NotAResumption()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        upstream.Script = async (context, message) =>
        {
            if (message?["params"]?["name"]?.GetValue<string>() == "break_stream")
            {
                ScriptedUpstream.StartEventStream(context.Response);
                await ScriptedUpstream.WriteEventAsync(context.Response, "id: b1\ndata: " + Notification1);
                context.Abort();
                return true;
            }

            return false;
        };
        await using var bridge = new RawStdioBridge(upstream.Url);
        await bridge.HandshakeAsync();
        await bridge.SendCallAsync(5, "break_stream");
        JsonNode error = (await bridge.ReceiveResponseAsync(5))["error"]!;
        Assert.Equal(-32001, error["code"]!.GetValue<int>());
        Assert.DoesNotContain(upstream.Requests, r => r.LastEventId is not null);
    }

    [Theory]
    [InlineData(401)]
    [InlineData(403)]
    public async Task UpstreamRefusesTheGatewaysCredentials_ClearError_ChallengeNotPassedOn(int status)
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        upstream.Script = (context, message) =>
        {
            if (message?["params"]?["name"]?.GetValue<string>() == "echo")
            {
                context.Response.StatusCode = status;
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"internal-secret-realm\", error=\"invalid_token\"";
                return Task.FromResult(true);
            }

            return Task.FromResult(false);
        };
        await using var bridge = new RawStdioBridge(upstream.Url, [new("Authorization", "Bearer stale")]);
        await bridge.HandshakeAsync();
        await bridge.SendCallAsync(4, "echo");
        JsonNode answer = await bridge.ReceiveResponseAsync(4);
        JsonNode error = answer["error"]!;
        Assert.Equal(-32003, error["code"]!.GetValue<int>());
        Assert.Contains($"refused the gateway's credentials (HTTP {status})", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("secret", answer.ToJsonString(), StringComparison.Ordinal);

        // The session goes on.
        await bridge.SendCallAsync(5, "list_k8s_resources");
        Assert.NotNull((await bridge.ReceiveResponseAsync(5))["result"]);
    }

    [Fact]
    public async Task HttpGateway_UpstreamRefusesItsCredentials_502WithTheSameError_NoChallenge()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        upstream.Script = (context, message) =>
        {
            if (message?["params"]?["name"]?.GetValue<string>() == "echo")
            {
                context.Response.StatusCode = 401;
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"internal-secret-realm\"";
                return Task.FromResult(true);
            }

            return Task.FromResult(false);
        };
        await using TestGateway gateway = await TestGateway.StartAsync(upstream.Url);
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage init = await http.SendAsync(Clients.Post(gateway.Url, Clients.Initialize));
        string session = init.Headers.GetValues("Mcp-Session-Id").Single();
        using HttpRequestMessage call = Clients.Post(gateway.Url, """{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{}}}""");
        call.Headers.Add("Mcp-Session-Id", session);
        using HttpResponseMessage response = await http.SendAsync(call);
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Empty(response.Headers.WwwAuthenticate);
        JsonNode body = await Clients.ReadMessageAsync(response);
        Assert.Equal(9, body["id"]!.GetValue<int>());
        Assert.Equal(-32003, body["error"]!["code"]!.GetValue<int>());
        Assert.Contains("refused the gateway's credentials (HTTP 401)", body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("secret", body.ToJsonString(), StringComparison.Ordinal);
    }
}
