using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>The SDK's HTTP client → the gateway (in-process) → a C# SDK ASP.NET Core server, on loopback sockets.</summary>
public sealed class SdkUpstreamTests : IAsyncLifetime
{
    private const string UpstreamSecret = "Bearer upstream-secret";
    private readonly (string Token, string Line) _alice = GrantTable.NewGrant("alice");
    private readonly (string Token, string Line) _bob = GrantTable.NewGrant("bob");
    private readonly (string Token, string Line) _carol = GrantTable.NewGrant("carol");
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private SdkHttpServer _server = null!;
    private TestGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        _server = await SdkHttpServer.StartAsync();
        string expires = _time.GetUtcNow().AddHours(1).ToString("O");
        string carolHash = _carol.Line[(_carol.Line.IndexOf(": ", StringComparison.Ordinal) + 2)..];
        GrantTable grants = GrantTable.Parse($$"""{ {{_alice.Line}}, {{_bob.Line}}, "carol": { "token": {{carolHash}}, "expires": "{{expires}}" } }""");
        _gateway = await TestGateway.StartAsync(_server.Url, o => o.With(
            grants: grants,
            upstreamHeaders: [new("Authorization", UpstreamSecret)]), _time);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task ToolsList_ShowsOnlyWhatThePolicyAllows()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        IList<McpClientTool> tools = await client.ListToolsAsync();
        string[] names = tools.Select(t => t.Name).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["CreateCodeConnection", "break_stream", "get_pod_logs", "list_k8s_resources", "slow_progress"], names);
    }

    [Fact]
    public async Task AllowedCall_Arrives_DeniedCall_IsAnErrorResult_AndNeverArrives()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        CallToolResult allowed = await client.CallToolAsync("list_k8s_resources", new Dictionary<string, object?> { ["kind"] = "Pod" });
        Assert.NotEqual(true, allowed.IsError);
        Assert.Equal("list_k8s_resources ok", Assert.IsType<TextContentBlock>(allowed.Content[0]).Text);

        CallToolResult denied = await client.CallToolAsync("add_inline_policy", new Dictionary<string, object?> { ["role"] = "admin" });
        Assert.True(denied.IsError);
        Assert.Contains("IAM changes are not allowed", Assert.IsType<TextContentBlock>(denied.Content[0]).Text);
        Assert.Equal("deny", denied.Meta!["policycompiler/decision"]!["decision"]!.GetValue<string>());

        CallToolResult unlisted = await client.CallToolAsync("apply_yaml");
        Assert.True(unlisted.IsError);

        Assert.Contains("list_k8s_resources", _server.Calls);
        Assert.DoesNotContain("add_inline_policy", _server.Calls);
        Assert.DoesNotContain("apply_yaml", _server.Calls);
        Assert.True(_gateway.Gateway.Metrics.Decisions("add_inline_policy", Policy.Runtime.DecisionKind.Deny) >= 1);
    }

    [Fact]
    public async Task GrantScopedLimit_CountsPerGrant()
    {
        await using McpClient alice = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        await using McpClient bob = await Clients.ConnectAsync(_gateway.Url, _bob.Token);
        Assert.NotEqual(true, (await alice.CallToolAsync("CreateCodeConnection")).IsError);
        Assert.NotEqual(true, (await alice.CallToolAsync("CreateCodeConnection")).IsError);
        CallToolResult third = await alice.CallToolAsync("CreateCodeConnection");
        Assert.True(third.IsError);
        Assert.Equal("rate_limited", third.Meta!["policycompiler/decision"]!["decision"]!.GetValue<string>());

        // Another grant has its own counter; a new session of the same grant does not.
        Assert.NotEqual(true, (await bob.CallToolAsync("CreateCodeConnection")).IsError);
        await using McpClient alice2 = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        Assert.True((await alice2.CallToolAsync("CreateCodeConnection")).IsError);
        Assert.Equal(3, _server.Calls.Count(c => c == "CreateCodeConnection"));
    }

    [Fact]
    public async Task SessionScopedLimit_CountsPerMcpSession()
    {
        await using McpClient first = await Clients.ConnectAsync(_gateway.Url, _bob.Token);
        Assert.NotEqual(true, (await first.CallToolAsync("get_pod_logs")).IsError);
        Assert.True((await first.CallToolAsync("get_pod_logs")).IsError);

        await using McpClient second = await Clients.ConnectAsync(_gateway.Url, _bob.Token);
        Assert.NotEqual(true, (await second.CallToolAsync("get_pod_logs")).IsError);
    }

    [Fact]
    public async Task Progress_StreamsThroughSse()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<ProgressNotificationValue>();
        var progress = new SynchronousProgress(seen.Enqueue);
        CallToolResult result = await client.CallToolAsync("slow_progress", progress: progress);
        Assert.NotEqual(true, result.IsError);

        // The SDK dispatches progress handlers apart from the response: the last one may land just after it.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (waited.Elapsed < Clients.Timeout && seen.Count < 3)
        {
            await Task.Delay(10);
        }

        // The SDK client runs its handlers concurrently, so reports may interleave: compare as a set.
        Assert.Equal([1f, 2f, 3f], seen.Select(p => p.Progress).Order().ToArray());
        Assert.Contains(seen, p => p.Message == "step 3");
    }

    [Fact]
    public async Task RawSse_EventsComeThroughInOrder_ThenTheResult()
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage init = await http.SendAsync(Clients.Post(_gateway.Url, Clients.Initialize, _alice.Token));
        string session = init.Headers.GetValues("Mcp-Session-Id").Single();
        using HttpRequestMessage initialized = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","method":"notifications/initialized"}""", _alice.Token);
        initialized.Headers.Add("Mcp-Session-Id", session);
        initialized.Headers.Add("MCP-Protocol-Version", "2025-06-18");
        Assert.Equal(HttpStatusCode.Accepted, (await http.SendAsync(initialized)).StatusCode);

        using HttpRequestMessage call = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow_progress","arguments":{},"_meta":{"progressToken":"p1"}}}""", _alice.Token);
        call.Headers.Add("Mcp-Session-Id", session);
        call.Headers.Add("MCP-Protocol-Version", "2025-06-18");
        using HttpResponseMessage response = await http.SendAsync(call, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var order = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                JsonNode message = JsonNode.Parse(line[5..])!;
                order.Add(message["method"]?.GetValue<string>() == "notifications/progress"
                    ? "progress " + message["params"]!["progress"]!.GetValue<double>()
                    : "result " + message["id"]);
            }
        }

        Assert.Equal(["progress 1", "progress 2", "progress 3", "result 7"], order);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("application/jsonp")]
    [InlineData(null)]
    public async Task PostThatIsNotApplicationJson_Is415(string? contentType)
    {
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, Clients.Initialize, _alice.Token);
        request.Content!.Headers.ContentType = contentType is null ? null : new MediaTypeHeaderValue(contentType);
        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Contains("application/json", (await Clients.ReadMessageAsync(response))["error"]!["message"]!.GetValue<string>());

        // With parameters and in another case it is still JSON.
        using HttpRequestMessage charset = Clients.Post(_gateway.Url, Clients.Initialize, _alice.Token);
        charset.Content!.Headers.ContentType = MediaTypeHeaderValue.Parse("Application/JSON; charset=utf-8");
        using HttpResponseMessage accepted = await http.SendAsync(charset);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Fact]
    public async Task Dispose_SendsDelete_AndTheSessionIsForgotten()
    {
        int before = _server.Deletes;
        McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        await client.ListToolsAsync();
        Assert.True(_gateway.Gateway.ActiveSessions >= 1);
        string sessionId = client.SessionId!;
        await client.DisposeAsync();
        Assert.True(_server.Deletes > before);

        // The gateway forgot it: a request naming it is 404 without reaching the upstream.
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","id":2,"method":"tools/list"}""", _alice.Token);
        request.Headers.Add("Mcp-Session-Id", sessionId);
        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task ClientToken_IsNeverForwarded_TheGatewaysOwnIs()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        await client.CallToolAsync("list_k8s_resources");
        Assert.NotEmpty(_server.AuthorizationHeaders);
        Assert.All(_server.AuthorizationHeaders, h => Assert.Equal(UpstreamSecret, h));
    }

    [Theory]
    [InlineData(null, "Bearer realm=\"mcp\"")]
    [InlineData("not-a-token", "invalid_token")]
    public async Task MissingOrUnknownToken_Is401WithWwwAuthenticate(string? token, string challenge)
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage response = await http.SendAsync(Clients.Post(_gateway.Url, Clients.Initialize, token));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains(challenge, response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Empty(_server.Calls);
        await Assert.ThrowsAnyAsync<Exception>(() => Clients.ConnectAsync(_gateway.Url, token));
    }

    [Fact]
    public async Task ExpiredToken_Is401_AfterItWorked()
    {
        await using (McpClient client = await Clients.ConnectAsync(_gateway.Url, _carol.Token))
        {
            await client.CallToolAsync("list_k8s_resources");
        }

        _time.Advance(TimeSpan.FromHours(2));
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage response = await http.SendAsync(Clients.Post(_gateway.Url, Clients.Initialize, _carol.Token));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("expired", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SessionOfAnotherGrant_IsNotFound()
    {
        await using McpClient alice = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"list_k8s_resources"}}""", _bob.Token);
        request.Headers.Add("Mcp-Session-Id", alice.SessionId);
        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData("http://evil.example", null)]
    [InlineData("null", null)]
    [InlineData(null, "evil.example")]
    public async Task ForeignOriginOrHost_Is403(string? origin, string? host)
    {
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, Clients.Initialize, _alice.Token);
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        if (host is not null)
        {
            request.Headers.Host = host;
        }

        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task LoopbackOrigin_IsAllowed()
    {
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, Clients.Initialize, _alice.Token);
        request.Headers.Add("Origin", "http://localhost:3000");
        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("Mcp-Session-Id"));
    }

    [Theory]
    [InlineData("tools/call", "list_k8s_resources")]   // the header names an allowed tool, the body a denied one
    [InlineData("tools/list", null)]
    [InlineData("tools/call", "=?base64?bGlzdF9rOHNfcmVzb3VyY2Vz?=")]
    public async Task HeaderBodyMismatch_Is400With32020(string method, string? name)
    {
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"add_inline_policy","arguments":{}}}""", _alice.Token);
        request.Headers.Add("Mcp-Method", method);
        if (name is not null)
        {
            request.Headers.Add("Mcp-Name", name);
        }

        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        JsonNode body = await Clients.ReadMessageAsync(response);
        Assert.Equal(-32020, body["error"]!["code"]!.GetValue<int>());
        Assert.Equal(4, body["id"]!.GetValue<int>());
        Assert.Empty(_server.Calls);
    }

    [Fact]
    public async Task MatchingHeaders_AreAccepted_AndDecidedOnTheBody()
    {
        using HttpClient http = Clients.Raw();
        using HttpRequestMessage request = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"add_inline_policy","arguments":{}}}""", _alice.Token);
        request.Headers.Add("Mcp-Method", "tools/call");
        request.Headers.Add("Mcp-Name", "=?base64?YWRkX2lubGluZV9wb2xpY3k=?=");
        using HttpResponseMessage response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        JsonNode body = await Clients.ReadMessageAsync(response);
        Assert.True(body["result"]!["isError"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add_inline_policy"}}]""", -32600, 400)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_k8s_resources","name":"add_inline_policy"}}""", -32600, 400)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_k8s_resources","arguments":{"a":1,"a":2}}}""", -32600, 400)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"add_inline_policy","name":"list_k8s_resources"}}""", -32602, 400)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_k8s_resources"}} trailing""", -32700, 400)]
    [InlineData("", -32700, 400)]
    public async Task BadMessages_AreRefusedWithStatusAndJsonRpcError(string body, int code, int status)
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage response = await http.SendAsync(Clients.Post(_gateway.Url, body, _alice.Token));
        Assert.Equal(status, (int)response.StatusCode);
        JsonNode error = await Clients.ReadMessageAsync(response);
        Assert.Equal(code, error["error"]!["code"]!.GetValue<int>());
        Assert.Empty(_server.Calls);
    }

    [Fact]
    public async Task EscapedToolName_IsDecidedAsTheServerReadsIt()
    {
        using HttpClient http = Clients.Raw();
        // "add\u005finline_policy" is add_inline_policy once decoded.
        using HttpResponseMessage response = await http.SendAsync(Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add\u005finline_policy"}}""", _alice.Token));
        JsonNode body = await Clients.ReadMessageAsync(response);
        Assert.True(body["result"]!["isError"]!.GetValue<bool>());
        Assert.Empty(_server.Calls);
    }

    [Fact]
    public async Task UpstreamClosesMidStream_ClientGetsAnError_GatewayStaysUp()
    {
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        await Assert.ThrowsAnyAsync<Exception>(async () => await client.CallToolAsync("break_stream", cancellationToken: timeout.Token));

        await using McpClient again = await Clients.ConnectAsync(_gateway.Url, _alice.Token);
        CallToolResult result = await again.CallToolAsync("list_k8s_resources");
        Assert.NotEqual(true, result.IsError);
    }

    [Fact]
    public async Task Admin_ServesHealthReadinessAndMetrics()
    {
        await using (McpClient client = await Clients.ConnectAsync(_gateway.Url, _alice.Token))
        {
            await client.CallToolAsync("add_inline_policy");
            await client.CallToolAsync("list_k8s_resources");
        }

        using HttpClient http = Clients.Raw();
        var admin = new Uri($"http://{_gateway.Gateway.AdminEndPoint}");
        Assert.Equal("ok\n", await http.GetStringAsync(new Uri(admin, "/healthz")));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(admin, "/readyz"))).StatusCode);
        string metrics = await http.GetStringAsync(new Uri(admin, "/metrics"));
        Assert.Contains("policycompiler_decisions_total{tool=\"add_inline_policy\",decision=\"deny\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("policycompiler_decisions_total{tool=\"list_k8s_resources\",decision=\"allow\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("policycompiler_decision_duration_seconds_count 2", metrics, StringComparison.Ordinal);
        Assert.Contains("policycompiler_upstream_latency_seconds_bucket{le=\"+Inf\"}", metrics, StringComparison.Ordinal);
        Assert.Contains("policycompiler_active_sessions ", metrics, StringComparison.Ordinal);
        Assert.Matches(@"policycompiler_client_bytes_sent_total [1-9]", metrics);
        // The MCP port does not serve admin paths.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri(_gateway.Url, "/metrics"))).StatusCode);
    }

    private sealed class SynchronousProgress(Action<ProgressNotificationValue> report) : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value) => report(value);
    }
}
