using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Hosting;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// Held calls over Streamable HTTP (docs/approvals.md): the SDK client's POST waits while a person answers
/// through the admin listener's <c>/approvals</c> API; the SDK server's call log proves what arrived.
/// </summary>
public sealed class HttpApprovalTests : IAsyncLifetime
{
    private const string AdminSecret = "0123456789abcdef-admin-secret";

    private const string Policy = """
        {
          "version": "1",
          "name": "http-approvals",
          "default": "deny",
          "tools": {
            "list_k8s_resources": {},
            "apply_yaml": {
              "action": "approve",
              "reason": "applying YAML needs a human",
              "limits": [ { "counter": "yaml", "window": "hour", "max": 1, "scope": "grant" } ]
            }
          }
        }
        """;

    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private SdkHttpServer _server = null!;
    private HttpGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        _server = await SdkHttpServer.StartAsync();
        _gateway = await StartGatewayAsync(AdminToken.FromText(AdminSecret));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _server.DisposeAsync();
    }

    private Task<HttpGateway> StartGatewayAsync(AdminToken? token) => HttpGateway.StartAsync(
        new HttpGatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Upstream = _server.Url,
            Admin = new IPEndPoint(IPAddress.Loopback, 0),
            AdminToken = token,
        },
        TestGateway.CreateEvaluator(Policy, _time),
        null,
        new StderrLoggerProvider(LogLevel.Warning, "http-approvals").CreateLogger("gateway"),
        time: _time);

    private Uri Admin(string path, HttpGateway? gateway = null) => new($"http://{(gateway ?? _gateway).AdminEndPoint}{path}");

    private static HttpRequestMessage AdminRequest(HttpMethod method, Uri url, string? token = AdminSecret, string? body = null)
    {
        var request = new HttpRequestMessage(method, url);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        return request;
    }

    private async Task<JsonElement> WaitForPendingAsync(HttpClient http, int count = 1)
    {
        for (int i = 0; i < 2000; i++)
        {
            using HttpResponseMessage response = await http.SendAsync(AdminRequest(HttpMethod.Get, Admin("/approvals")));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            JsonElement list = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("approvals");
            if (list.GetArrayLength() >= count)
            {
                return list;
            }

            await Task.Delay(10);
        }

        throw new TimeoutException("no approval became pending");
    }

    private static Dictionary<string, object?> Yaml(string name) => new() { ["yaml"] = "kind: Namespace\nmetadata:\n  name: " + name };

    [Fact]
    public async Task HeldPost_ApprovedThroughTheAdminApi_ReachesTheServer()
    {
        using HttpClient http = Clients.Raw();
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        Task<CallToolResult> call = client.CallToolAsync("apply_yaml", Yaml("team-a")).AsTask();

        JsonElement pending = (await WaitForPendingAsync(http))[0];
        Assert.Equal("apply_yaml", pending.GetProperty("tool").GetString());
        Assert.Contains("team-a", pending.GetProperty("arguments").GetString());
        Assert.Equal("applying YAML needs a human", pending.GetProperty("reason").GetString());
        Assert.Equal("/tools/apply_yaml/action", pending.GetProperty("rule").GetString());
        Assert.False(call.IsCompleted);
        Assert.DoesNotContain("apply_yaml", _server.Calls);

        string id = pending.GetProperty("id").GetString()!;
        using HttpResponseMessage approved = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{id}/approve"), body: """{"by":"bob","note":"reviewed"}"""));
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
        CallToolResult result = await call.WaitAsync(Clients.Timeout);
        Assert.NotEqual(true, result.IsError);
        Assert.Equal("apply_yaml ok", Assert.IsType<TextContentBlock>(result.Content[0]).Text);
        Assert.Contains("apply_yaml", _server.Calls);

        // Answered once: a second answer is a conflict, an unknown id is not found.
        using HttpResponseMessage again = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{id}/deny")));
        Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        using HttpResponseMessage unknown = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin("/approvals/apr_0000/approve")));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(1, _gateway.Metrics.ApprovalOutcomes("approved"));
    }

    [Fact]
    public async Task HeldPost_Denied_IsAnErrorResultWithTheNote_AndNeverArrives()
    {
        using HttpClient http = Clients.Raw();
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        Task<CallToolResult> call = client.CallToolAsync("apply_yaml", Yaml("team-b")).AsTask();
        string id = (await WaitForPendingAsync(http))[0].GetProperty("id").GetString()!;
        using HttpResponseMessage denied = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{id}/deny"), body: """{"by":"bob","note":"wrong namespace"}"""));
        Assert.Equal(HttpStatusCode.OK, denied.StatusCode);

        CallToolResult result = await call.WaitAsync(Clients.Timeout);
        Assert.True(result.IsError);
        Assert.Contains("approval denied by bob: wrong namespace", Assert.IsType<TextContentBlock>(result.Content[0]).Text);
        Assert.DoesNotContain("apply_yaml", _server.Calls);
    }

    [Fact]
    public async Task HeldPost_NobodyAnswers_TimesOut()
    {
        using HttpClient http = Clients.Raw();
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        Task<CallToolResult> call = client.CallToolAsync("apply_yaml", Yaml("team-c")).AsTask();
        await WaitForPendingAsync(http);
        _time.Advance(ApprovalBroker.DefaultTimeout);
        CallToolResult result = await call.WaitAsync(Clients.Timeout);
        Assert.True(result.IsError);
        Assert.Contains("timed out", Assert.IsType<TextContentBlock>(result.Content[0]).Text);
        Assert.DoesNotContain("apply_yaml", _server.Calls);
    }

    [Fact]
    public async Task ClientCancellation_WithdrawsTheHeldCall()
    {
        using HttpClient http = Clients.Raw();
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        using var cancel = new CancellationTokenSource();
        Task<CallToolResult> call = client.CallToolAsync("apply_yaml", Yaml("team-d"), cancellationToken: cancel.Token).AsTask();
        string id = (await WaitForPendingAsync(http))[0].GetProperty("id").GetString()!;
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        for (int i = 0; i < 2000 && _gateway.Approvals.Count > 0; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(0, _gateway.Approvals.Count);
        using HttpResponseMessage late = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{id}/approve")));
        Assert.Equal(HttpStatusCode.Conflict, late.StatusCode);
        Assert.DoesNotContain("apply_yaml", _server.Calls);
    }

    [Fact]
    public async Task TwoHeldPosts_AnsweredOutOfOrder_AndTheLimitIsTakenOnlyByTheForwardedCall()
    {
        using HttpClient http = Clients.Raw();
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        Task<CallToolResult> first = client.CallToolAsync("apply_yaml", Yaml("one")).AsTask();
        Task<CallToolResult> second = client.CallToolAsync("apply_yaml", Yaml("two")).AsTask();
        JsonElement list = await WaitForPendingAsync(http, 2);
        string idOf(string name) => list.EnumerateArray().Single(a => a.GetProperty("arguments").GetString()!.Contains(name)).GetProperty("id").GetString()!;
        string firstId = idOf("one"), secondId = idOf("two");

        // The second is denied first: it takes no slot of the hourly limit (max 1)...
        (await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{secondId}/deny")))).Dispose();
        Assert.True((await second.WaitAsync(Clients.Timeout)).IsError);
        Assert.False(first.IsCompleted);

        // ...so the first, approved afterwards, still fits.
        (await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{firstId}/approve")))).Dispose();
        Assert.NotEqual(true, (await first.WaitAsync(Clients.Timeout)).IsError);
        Assert.Single(_server.Calls, c => c == "apply_yaml");

        // A third approved call is over the limit: rate-limited when it would be forwarded, and it never arrives.
        Task<CallToolResult> third = client.CallToolAsync("apply_yaml", Yaml("three")).AsTask();
        string thirdId = (await WaitForPendingAsync(http))[0].GetProperty("id").GetString()!;
        (await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{thirdId}/approve")))).Dispose();
        CallToolResult limited = await third.WaitAsync(Clients.Timeout);
        Assert.True(limited.IsError);
        Assert.Equal("rate_limited", limited.Meta!["policycompiler/decision"]!["decision"]!.GetValue<string>());
        Assert.Single(_server.Calls, c => c == "apply_yaml");
    }

    [Fact]
    public async Task SessionScopedApproval_CoversTheSameCallInTheSameSessionOnly()
    {
        using HttpClient http = Clients.Raw();
        await using McpClient client = await Clients.ConnectAsync(_gateway.Url);
        Task<CallToolResult> call = client.CallToolAsync("list_k8s_resources").AsTask();
        Assert.NotEqual(true, (await call).IsError);

        Task<CallToolResult> first = client.CallToolAsync("apply_yaml", Yaml("same")).AsTask();
        string id = (await WaitForPendingAsync(http))[0].GetProperty("id").GetString()!;
        using HttpResponseMessage approved = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{id}/approve"), body: """{"scope":"session"}"""));
        Assert.Contains("\"session\"", await approved.Content.ReadAsStringAsync());
        Assert.NotEqual(true, (await first.WaitAsync(Clients.Timeout)).IsError);

        // The same call again in the same session is not held (it is rate limited by the policy's own limit, which still applies).
        CallToolResult again = await client.CallToolAsync("apply_yaml", Yaml("same")).AsTask().WaitAsync(Clients.Timeout);
        Assert.Equal("rate_limited", again.Meta!["policycompiler/decision"]!["decision"]!.GetValue<string>());

        // Another session is asked again.
        await using McpClient other = await Clients.ConnectAsync(_gateway.Url);
        Task<CallToolResult> elsewhere = other.CallToolAsync("apply_yaml", Yaml("same")).AsTask();
        await WaitForPendingAsync(http);
        Assert.False(elsewhere.IsCompleted);
    }

    private Task<McpClient> ConnectWithElicitationAsync(Func<ElicitRequestParams?, CancellationToken, ValueTask<ElicitResult>> handler)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = _gateway.Url,
            TransportMode = HttpTransportMode.StreamableHttp,
            MaxReconnectionAttempts = 0,
        });
        return McpClient.CreateAsync(transport, new McpClientOptions
        {
            Capabilities = new ClientCapabilities { Elicitation = new ElicitationCapability() },
            Handlers = new McpClientHandlers { ElicitationHandler = handler },
        });
    }

    private static ElicitResult Accept(string decision) =>
        new() { Action = "accept", Content = new Dictionary<string, JsonElement> { ["decision"] = JsonSerializer.SerializeToElement(decision) } };

    [Fact]
    public async Task ClientWithElicitation_IsAskedOnThePostsStream_AndItsAnswerDecides()
    {
        var asked = new List<string>();
        string decision = "approve";
        await using McpClient client = await ConnectWithElicitationAsync((request, _) =>
        {
            lock (asked)
            {
                asked.Add(request!.Message);
            }

            return ValueTask.FromResult(decision == "decline" ? new ElicitResult { Action = "decline" } : Accept(decision));
        });

        CallToolResult approved = await client.CallToolAsync("apply_yaml", Yaml("asked")).AsTask().WaitAsync(Clients.Timeout);
        Assert.NotEqual(true, approved.IsError);
        Assert.Equal("apply_yaml ok", Assert.IsType<TextContentBlock>(approved.Content[0]).Text);
        Assert.Contains("apply_yaml", Assert.Single(asked));
        Assert.Contains("asked", asked[0]);
        Assert.Single(_server.Calls, c => c == "apply_yaml");

        decision = "decline";
        CallToolResult declined = await client.CallToolAsync("apply_yaml", Yaml("declined")).AsTask().WaitAsync(Clients.Timeout);
        Assert.True(declined.IsError);
        Assert.Contains("declined in the client", Assert.IsType<TextContentBlock>(declined.Content[0]).Text);
        Assert.Single(_server.Calls, c => c == "apply_yaml");
        Assert.Equal(0, _gateway.Approvals.Count);
    }

    [Fact]
    public async Task AdminAnswerWhileTheClientIsAsked_Decides_AndTheLateFormAnswerIsIgnored()
    {
        using HttpClient http = Clients.Raw();
        var formShown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var adminAnswered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using McpClient client = await ConnectWithElicitationAsync(async (_, _) =>
        {
            formShown.TrySetResult();
            await adminAnswered.Task;
            return new ElicitResult { Action = "decline" };
        });

        Task<CallToolResult> call = client.CallToolAsync("apply_yaml", Yaml("raced")).AsTask();
        await formShown.Task.WaitAsync(Clients.Timeout);
        string id = (await WaitForPendingAsync(http))[0].GetProperty("id").GetString()!;
        using HttpResponseMessage approved = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin($"/approvals/{id}/approve"), body: """{"by":"oncall"}"""));
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
        CallToolResult result = await call.WaitAsync(Clients.Timeout);
        adminAnswered.TrySetResult();
        Assert.NotEqual(true, result.IsError);
        Assert.Single(_server.Calls, c => c == "apply_yaml");
    }

    [Fact]
    public async Task AnotherSession_CannotAnswerOrCloseAnElicitation_EvenWithItsId()
    {
        using HttpClient http = Clients.Raw();
        async Task<string> OpenSessionAsync(bool elicitation)
        {
            string initialize = """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":""" +
                (elicitation ? """{"elicitation":{}}""" : "{}") + ""","clientInfo":{"name":"raw","version":"1"}}}""";
            using HttpResponseMessage init = await http.SendAsync(Clients.Post(_gateway.Url, initialize));
            string session = init.Headers.GetValues("Mcp-Session-Id").Single();
            using HttpRequestMessage initialized = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","method":"notifications/initialized"}""");
            initialized.Headers.Add("Mcp-Session-Id", session);
            (await http.SendAsync(initialized)).Dispose();
            return session;
        }

        HttpRequestMessage InSession(string session, string body)
        {
            HttpRequestMessage request = Clients.Post(_gateway.Url, body);
            request.Headers.Add("Mcp-Session-Id", session);
            request.Headers.Add("MCP-Protocol-Version", "2025-06-18");
            return request;
        }

        string asked = await OpenSessionAsync(elicitation: true);
        string intruder = await OpenSessionAsync(elicitation: false);

        // The held call's POST answers with an SSE stream whose first message is the gateway's question.
        using HttpResponseMessage held = await http.SendAsync(
            InSession(asked, """{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"apply_yaml","arguments":{"yaml":"x"}}}"""),
            HttpCompletionOption.ResponseHeadersRead);
        using var events = new StreamReader(await held.Content.ReadAsStreamAsync());
        string? line;
        while ((line = await events.ReadLineAsync().WaitAsync(Clients.Timeout)) is not null && !line.StartsWith("data:", StringComparison.Ordinal))
        {
        }

        JsonNode question = JsonNode.Parse(line!["data:".Length..])!;
        Assert.Equal("elicitation/create", question["method"]!.GetValue<string>());
        string questionId = question["id"]!.ToJsonString();

        // The other session answers it with the right id: accepted for delivery (202), but it decides nothing.
        using (HttpResponseMessage forged = await http.SendAsync(InSession(intruder,
            """{"jsonrpc":"2.0","id":""" + questionId + ""","result":{"action":"accept","content":{"decision":"approve"}}}""")))
        {
            Assert.Equal(HttpStatusCode.Accepted, forged.StatusCode);
        }

        Assert.Equal(1, _gateway.Approvals.Count);
        Assert.DoesNotContain("apply_yaml", _server.Calls);

        // The session that was asked still can answer: the forgery did not close its question.
        using (HttpResponseMessage answer = await http.SendAsync(InSession(asked,
            """{"jsonrpc":"2.0","id":""" + questionId + ""","result":{"action":"accept","content":{"decision":"deny","note":"no"}}}""")))
        {
            Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
        }

        string rest = await events.ReadToEndAsync().WaitAsync(Clients.Timeout);
        Assert.Contains("\"isError\":true", rest);
        Assert.Equal(0, _gateway.Approvals.Count);
        Assert.DoesNotContain("apply_yaml", _server.Calls);
    }

    [Fact]
    public async Task AdminApi_RequiresTheToken()
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage missing = await http.SendAsync(AdminRequest(HttpMethod.Get, Admin("/approvals"), token: null));
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.NotEmpty(missing.Headers.WwwAuthenticate);
        using HttpResponseMessage wrong = await http.SendAsync(AdminRequest(HttpMethod.Get, Admin("/approvals"), token: AdminSecret + "x"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using HttpResponseMessage badScope = await http.SendAsync(AdminRequest(HttpMethod.Post, Admin("/approvals/apr_1/approve"), body: """{"scope":"forever"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, badScope.StatusCode);
        using HttpResponseMessage wrongMethod = await http.SendAsync(AdminRequest(HttpMethod.Delete, Admin("/approvals")));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);

        // Metrics stay open (no token), and show the approvals gauge.
        string metrics = await http.GetStringAsync(Admin("/metrics"));
        Assert.Contains("policycompiler_approvals_pending 0", metrics);

        // Without a configured token the routes refuse and say how to configure one.
        await using HttpGateway unprotected = await StartGatewayAsync(token: null);
        using HttpResponseMessage disabled = await http.SendAsync(AdminRequest(HttpMethod.Get, Admin("/approvals", unprotected)));
        Assert.Equal(HttpStatusCode.Forbidden, disabled.StatusCode);
        Assert.Contains("--admin-token-file", await disabled.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task StdioAdminServer_ServesHealthMetricsAndTheApprovalsApi()
    {
        var metrics = new GatewayMetrics();
        using var broker = new ApprovalBroker(_time, metrics: metrics);
        await using StdioAdminServer admin = await StdioAdminServer.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), metrics, broker, AdminToken.FromText(AdminSecret), new StderrLoggerProvider(LogLevel.Warning, "t").CreateLogger("t"));
        using HttpClient http = Clients.Raw();
        Uri baseUri = new($"http://{admin.EndPoint}");
        Assert.Equal("ok\n", await http.GetStringAsync(new Uri(baseUri, "/healthz")));
        Assert.Contains("policycompiler_approvals_pending 0", await http.GetStringAsync(new Uri(baseUri, "/metrics")));
        using (HttpResponseMessage readyz = await http.GetAsync(new Uri(baseUri, "/readyz")))
        {
            // No readiness probe in stdio mode: its one upstream is the gateway's own child.
            Assert.Equal(HttpStatusCode.NotFound, readyz.StatusCode);
        }

        using HttpResponseMessage list = await http.SendAsync(AdminRequest(HttpMethod.Get, new Uri(baseUri, "/approvals")));
        Assert.Equal("[]", JsonDocument.Parse(await list.Content.ReadAsStringAsync()).RootElement.GetProperty("approvals").GetRawText());
    }
}
