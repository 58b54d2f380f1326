using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.EndToEnd.Tests.Infrastructure;

namespace PolicyCompiler.EndToEnd.Tests;

/// <summary>
/// Human approval through the native gateway (docs/approvals.md), in front of the EKS-like server, driven
/// by the official C# SDK client: answered in the client through elicitation, or out of band through the
/// gateway's admin API (a client without the capability). The server's call log proves that no
/// unapproved call arrived. Policies/e2e.json: CreateCodeConnection to an external repository needs
/// approval (default timeout; its limit of 3 a minute applies when forwarded); a manage_k8s_resource
/// patch needs approval within 2 s.
/// </summary>
[Collection(NativeGatewayCollection.Name)]
public sealed class ApprovalTests(NativeGatewayFixture gateway) : IDisposable
{
    private const string AdminToken = "e2e-admin-token-0123456789";
    private readonly CallLog _calls = new();
    private readonly string _directory = Directory.CreateTempSubdirectory("pc-e2e-approvals-").FullName;

    public void Dispose()
    {
        _calls.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private string TokenFile
    {
        get
        {
            string path = Path.Combine(_directory, "admin-token");
            File.WriteAllText(path, AdminToken + "\n");
            return path;
        }
    }

    private Task<McpClient> ConnectAsync(string grant, Func<ElicitRequestParams?, ElicitResult>? elicit = null, string? admin = null, string? audit = null)
    {
        var arguments = new List<string> { "stdio", "--grant", grant, "--state", "memory" };
        if (admin is not null)
        {
            arguments.AddRange(["--admin", admin, "--admin-token-file", TokenFile]);
        }

        if (audit is not null)
        {
            arguments.AddRange(["--audit", audit]);
        }

        arguments.AddRange(["--", "dotnet", Repo.EksLikeServerDll]);
        McpClientOptions? options = elicit is null ? null : new McpClientOptions
        {
            Capabilities = new ClientCapabilities { Elicitation = new ElicitationCapability() },
            Handlers = new McpClientHandlers { ElicitationHandler = (request, _) => ValueTask.FromResult(elicit(request)) },
        };
        return McpClient.CreateAsync(
            new StdioClientTransport(new StdioClientTransportOptions
            {
                Name = "gateway",
                Command = gateway.GatewayPath,
                Arguments = arguments,
                EnvironmentVariables = new Dictionary<string, string?> { ["EKS_LIKE_SERVER_CALL_LOG"] = _calls.Path },
            }),
            options);
    }

    private static ElicitResult Answer(string decision, string? scope = null, string? note = null)
    {
        var content = new Dictionary<string, JsonElement> { ["decision"] = JsonSerializer.SerializeToElement(decision) };
        if (scope is not null)
        {
            content["scope"] = JsonSerializer.SerializeToElement(scope);
        }

        if (note is not null)
        {
            content["note"] = JsonSerializer.SerializeToElement(note);
        }

        return new ElicitResult { Action = "accept", Content = content };
    }

    private static Dictionary<string, object?> External(string name) => new() { ["repository"] = "https://external.example/" + name };

    private static string Text(CallToolResult result) => string.Concat(result.Content.OfType<TextContentBlock>().Select(t => t.Text));

    private static HttpRequestMessage Admin(HttpMethod method, string admin, string path, string? body = null)
    {
        var request = new HttpRequestMessage(method, $"http://{admin}{path}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        return request;
    }

    private static async Task<JsonElement[]> PendingAsync(HttpClient http, string admin, int atLeast)
    {
        for (int i = 0; i < 600; i++)
        {
            try
            {
                using HttpResponseMessage response = await http.SendAsync(Admin(HttpMethod.Get, admin, "/approvals"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    JsonElement[] list = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("approvals").EnumerateArray().ToArray();
                    if (list.Length >= atLeast)
                    {
                        return list;
                    }
                }
            }
            catch (HttpRequestException)
            {
                // The admin listener is still starting.
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"fewer than {atLeast} approvals became pending");
    }

    [Fact]
    public async Task Elicitation_approve_forwards_the_call_and_decline_never_reaches_the_server()
    {
        var asked = new List<ElicitRequestParams?>();
        string decision = "approve";
        await using var client = await ConnectAsync("approvals-elicit", request =>
        {
            lock (asked)
            {
                asked.Add(request);
            }

            return decision == "decline" ? new ElicitResult { Action = "decline" } : Answer(decision, note: "checked by the test");
        });

        CallToolResult approved = await client.CallToolAsync("CreateCodeConnection", External("ok"));
        Assert.False(approved.IsError ?? false, Text(approved));
        Assert.Contains("CreateCodeConnection ok", Text(approved));
        ElicitRequestParams request = Assert.Single(asked)!;
        Assert.Contains("CreateCodeConnection", request.Message);
        Assert.Contains("https://external.example/ok", request.Message);
        Assert.Contains("linking an external repository needs a human", request.Message);

        decision = "decline";
        CallToolResult declined = await client.CallToolAsync("CreateCodeConnection", External("declined"));
        Assert.True(declined.IsError);
        Assert.Contains("declined in the client", Text(declined));

        decision = "deny";
        CallToolResult denied = await client.CallToolAsync("CreateCodeConnection", External("denied"));
        Assert.True(denied.IsError);
        Assert.Contains("checked by the test", Text(denied));

        // Calls that need no approval are never held or asked about.
        await client.CallToolAsync("list_k8s_resources", new Dictionary<string, object?>());
        Assert.Equal(3, asked.Count);
        Assert.Equal(["CreateCodeConnection", "list_k8s_resources"], _calls.Calls().Select(c => c.Tool).ToArray());
        Assert.Equal("https://external.example/ok", (string?)_calls.Calls()[0].Arguments!["repository"]);
    }

    [Fact]
    public async Task Counters_are_taken_only_by_forwarded_calls_and_a_session_scope_skips_the_question()
    {
        int asked = 0;
        string decision = "deny";
        await using var client = await ConnectAsync("approvals-limits", _ =>
        {
            Interlocked.Increment(ref asked);
            return decision == "deny" ? Answer("deny") : Answer("approve", scope: "session");
        });

        // Three denied calls: none takes a slot of the 3-a-minute limit...
        for (int i = 0; i < 3; i++)
        {
            Assert.True((await client.CallToolAsync("CreateCodeConnection", External("same"))).IsError);
        }

        // ...so three approved ones all go through: the first asks (session scope), the next two do not.
        decision = "approve";
        for (int i = 0; i < 3; i++)
        {
            CallToolResult result = await client.CallToolAsync("CreateCodeConnection", External("same"));
            Assert.False(result.IsError ?? false, Text(result));
        }

        Assert.Equal(4, asked);
        // The fourth is still within the session scope, but the limit (reserved on forward) refuses it.
        CallToolResult limited = await client.CallToolAsync("CreateCodeConnection", External("same"));
        Assert.Equal("rate_limited", (string?)limited.Meta!["policycompiler/decision"]!["decision"]);
        Assert.Equal(4, asked);
        Assert.Equal(3, _calls.CountOf("CreateCodeConnection"));
    }

    [Fact]
    public async Task Client_without_elicitation_is_answered_through_the_admin_api_out_of_order()
    {
        string admin = "127.0.0.1:" + LoopbackPort.Free();
        string audit = Path.Combine(_directory, "audit.jsonl");
        await using var client = await ConnectAsync("approvals-admin", admin: admin, audit: audit);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };

        Task<CallToolResult> first = client.CallToolAsync("CreateCodeConnection", External("first")).AsTask();
        Task<CallToolResult> second = client.CallToolAsync("CreateCodeConnection", External("second")).AsTask();
        JsonElement[] pending = await PendingAsync(http, admin, 2);
        string idOf(string name) => pending.Single(p => p.GetProperty("arguments").GetString()!.Contains(name)).GetProperty("id").GetString()!;
        Assert.All(pending, p => Assert.Equal("approvals-admin", p.GetProperty("grant").GetString()));
        Assert.Empty(_calls.Calls());

        using (HttpResponseMessage response = await http.SendAsync(Admin(HttpMethod.Post, admin, $"/approvals/{idOf("second")}/deny", """{"by":"oncall","note":"unknown repository"}""")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        CallToolResult denied = await second.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(denied.IsError);
        Assert.Contains("approval denied by oncall: unknown repository", Text(denied));
        Assert.False(first.IsCompleted);

        using (HttpResponseMessage response = await http.SendAsync(Admin(HttpMethod.Post, admin, $"/approvals/{idOf("first")}/approve", """{"by":"oncall"}""")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        CallToolResult approved = await first.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(approved.IsError ?? false, Text(approved));
        Assert.Equal(["CreateCodeConnection"], _calls.Calls().Select(c => c.Tool).ToArray());
        Assert.Equal("https://external.example/first", (string?)_calls.Calls()[0].Arguments!["repository"]);

        string metrics = await http.GetStringAsync($"http://{admin}/metrics");
        Assert.Contains("policycompiler_approvals_total{outcome=\"approved\"} 1", metrics);
        Assert.Contains("policycompiler_approvals_total{outcome=\"denied\"} 1", metrics);

        // The audit log has each request and each answer, with who and the note.
        await client.DisposeAsync();
        string[] lines = File.ReadAllLines(audit);
        JsonElement[] approvals = lines.Select(l => JsonDocument.Parse(l).RootElement).Where(l => l.GetProperty("event").GetString() == "approval").ToArray();
        Assert.Equal(2, approvals.Count(a => a.GetProperty("status").GetString() == "requested"));
        JsonElement deniedLine = approvals.Single(a => a.GetProperty("status").GetString() == "denied");
        Assert.Equal("oncall", deniedLine.GetProperty("by").GetString());
        Assert.Equal("unknown repository", deniedLine.GetProperty("note").GetString());
        Assert.Equal("admin", deniedLine.GetProperty("via").GetString());
        Assert.Contains(lines, l => l.Contains("\"action\":\"held\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Unanswered_call_times_out_per_the_policy_and_cancel_withdraws_a_pending_one()
    {
        string admin = "127.0.0.1:" + LoopbackPort.Free();
        await using var client = await ConnectAsync("approvals-timeout", admin: admin);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };

        // manage_k8s_resource patches wait 2 s (approval.timeout), then the agent reads that it timed out.
        CallToolResult timedOut = await client.CallToolAsync("manage_k8s_resource", new Dictionary<string, object?> { ["operation"] = "patch", ["kind"] = "Deployment" });
        Assert.True(timedOut.IsError);
        Assert.Contains("timed out", Text(timedOut));

        // A cancelled call is withdrawn: it leaves the pending list and never reaches the server.
        using var cancel = new CancellationTokenSource();
        Task<CallToolResult> call = client.CallToolAsync("CreateCodeConnection", External("cancelled"), cancellationToken: cancel.Token).AsTask();
        await PendingAsync(http, admin, 1);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        JsonElement[] left = [];
        for (int i = 0; i < 600; i++)
        {
            using HttpResponseMessage response = await http.SendAsync(Admin(HttpMethod.Get, admin, "/approvals"));
            left = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("approvals").EnumerateArray().ToArray();
            if (left.Length == 0)
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.Empty(left);
        await client.CallToolAsync("list_k8s_resources", new Dictionary<string, object?>());
        Assert.Equal(["list_k8s_resources"], _calls.Calls().Select(c => c.Tool).ToArray());
    }

    [Fact]
    public async Task Http_gateway_asks_through_elicitation_on_the_post_stream_and_headless_clients_through_the_admin_api()
    {
        string listen = "127.0.0.1:" + LoopbackPort.Free();
        string admin = "127.0.0.1:" + LoopbackPort.Free();
        var start = new ProcessStartInfo(gateway.GatewayPath)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (string argument in (string[])["http", "--listen", listen, "--admin", admin, "--admin-token-file", TokenFile, "--grant", "approvals-http", "--state", "memory", "--", "dotnet", Repo.EksLikeServerDll])
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["EKS_LIKE_SERVER_CALL_LOG"] = _calls.Path;
        using Process process = Process.Start(start)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(20) };
            await PendingAsync(http, admin, 0); // the listener is up
            var endpoint = new Uri($"http://{listen}/mcp");

            // A client with elicitation is asked on its POST's stream, and its approval forwards the call.
            int asked = 0;
            await using (McpClient asking = await McpClient.CreateAsync(
                new HttpClientTransport(new HttpClientTransportOptions { Endpoint = endpoint, TransportMode = HttpTransportMode.StreamableHttp, MaxReconnectionAttempts = 0 }),
                new McpClientOptions
                {
                    Capabilities = new ClientCapabilities { Elicitation = new ElicitationCapability() },
                    Handlers = new McpClientHandlers
                    {
                        ElicitationHandler = (request, _) =>
                        {
                            Interlocked.Increment(ref asked);
                            return ValueTask.FromResult(Answer(request!.Message.Contains("/approved", StringComparison.Ordinal) ? "approve" : "deny"));
                        },
                    },
                }))
            {
                CallToolResult approved = await asking.CallToolAsync("CreateCodeConnection", External("approved"));
                Assert.False(approved.IsError ?? false, Text(approved));
                CallToolResult denied = await asking.CallToolAsync("CreateCodeConnection", External("denied"));
                Assert.True(denied.IsError);
                Assert.Equal(2, asked);
            }

            // A client without the capability waits for the admin API.
            await using McpClient headless = await McpClient.CreateAsync(
                new HttpClientTransport(new HttpClientTransportOptions { Endpoint = endpoint, TransportMode = HttpTransportMode.StreamableHttp, MaxReconnectionAttempts = 0 }));
            Task<CallToolResult> held = headless.CallToolAsync("CreateCodeConnection", External("headless")).AsTask();
            string id = (await PendingAsync(http, admin, 1))[0].GetProperty("id").GetString()!;
            using (HttpResponseMessage response = await http.SendAsync(Admin(HttpMethod.Post, admin, $"/approvals/{id}/deny", """{"note":"not from CI"}""")))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            CallToolResult refused = await held.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(refused.IsError);
            Assert.Contains("not from CI", Text(refused));

            Assert.Equal(["https://external.example/approved"], _calls.Calls().Where(c => c.Tool == "CreateCodeConnection").Select(c => (string)c.Arguments!["repository"]!).ToArray());
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            _ = await stderr;
        }
    }
}
