// Sampling, elicitation and logging are 2025-11-25 features that SDK 2.4.0 marks obsolete (2026-07-28 drops them);
// they are exactly what this class checks the gateway passes on.
#pragma warning disable MCP9005

using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// <c>GATEWAY http -- COMMAND</c> passes on what the stdio child sends on its own: progress and log
/// notifications and its own requests (sampling, elicitation) on the POST's SSE stream while a call runs,
/// the client's answers (POSTed back) to the child, and session messages (list_changed) on the GET stream.
/// The child is the conformance fixture (tests/Conformance/ConformanceFixture --stdio, official C# SDK);
/// these are the differences the conformance suite found (docs/conformance.md).
/// </summary>
public sealed class ChildServerInitiatedMessagesTests : IAsyncLifetime
{
    private const string AllowAll = """{ "version": "1", "name": "allow-all-tests", "default": "allow" }""";

    private ChildProcessHandler _children = null!;
    private HttpGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        string fixture = Path.Combine(Repo.Root, "tests", "Conformance", "ConformanceFixture", "bin", Repo.Configuration, "net10.0", "ConformanceFixture.dll");
        ILogger logger = new StderrLoggerProvider(LogLevel.Warning, "child-messages-gateway").CreateLogger("gateway");
        _children = new ChildProcessHandler("dotnet", [fixture, "--stdio"], TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(5), logger);
        var options = new HttpGatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Upstream = new Uri("http://stdio-child.invalid/mcp"),
        };
        _gateway = await HttpGateway.StartAsync(options, TestGateway.CreateEvaluator(AllowAll), null, logger, _children);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        Assert.Equal(0, _children.Children);
    }

    [Fact]
    public async Task Progress_DuringACall_ReachesTheClient()
    {
        // A session-wide handler, not the call's IProgress: the SDK client drops a call's progress handler
        // when the call returns, and may dispatch the last notification (on the wire before the result) after that.
        var reported = new ConcurrentQueue<double>();
        var options = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                NotificationHandlers =
                [
                    new(NotificationMethods.ProgressNotification, (notification, _) =>
                    {
                        reported.Enqueue(notification.Params!["progress"]!.GetValue<double>());
                        return ValueTask.CompletedTask;
                    }),
                ],
            },
        };
        await using McpClient client = await ConnectAsync(options);

        CallToolResult result = await client.CallToolAsync("test_tool_with_progress", new Dictionary<string, object?>(), new Progress());

        Assert.NotEqual(true, result.IsError);
        await WaitUntilAsync(() => reported.Count >= 3);
        Assert.Equal([0d, 50d, 100d], reported.Order().ToArray());
    }

    [Fact]
    public async Task LogMessages_DuringACall_ReachTheClient()
    {
        var messages = new ConcurrentQueue<string>();
        var options = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                NotificationHandlers =
                [
                    new(NotificationMethods.LoggingMessageNotification, (notification, _) =>
                    {
                        messages.Enqueue(notification.Params!["data"]!.GetValue<string>());
                        return ValueTask.CompletedTask;
                    }),
                ],
            },
        };
        await using McpClient client = await ConnectAsync(options);

        await client.CallToolAsync("test_tool_with_logging", new Dictionary<string, object?>());

        await WaitUntilAsync(() => messages.Count >= 3);
        Assert.Equal(["Tool execution completed", "Tool execution started", "Tool processing data"], messages.Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public async Task Sampling_RequestFromTheChild_IsAnsweredByTheClient()
    {
        string? prompt = null;
        var options = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                SamplingHandler = (request, _, _) =>
                {
                    prompt = Assert.IsType<TextContentBlock>(Assert.Single(request!.Messages).Content.Single()).Text;
                    return ValueTask.FromResult(new CreateMessageResult
                    {
                        Role = Role.Assistant,
                        Model = "test-model",
                        Content = [new TextContentBlock { Text = "the client's answer" }],
                    });
                },
            },
        };
        await using McpClient client = await ConnectAsync(options);

        CallToolResult result = await client.CallToolAsync("test_sampling", new Dictionary<string, object?> { ["prompt"] = "what is 2+2?" });

        Assert.Equal("what is 2+2?", prompt);
        Assert.Equal("LLM response: the client's answer", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
    }

    [Fact]
    public async Task Elicitation_RequestFromTheChild_IsAnsweredByTheClient()
    {
        var options = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                ElicitationHandler = (request, _) => ValueTask.FromResult(new ElicitResult
                {
                    Action = "accept",
                    Content = new Dictionary<string, JsonElement>
                    {
                        ["username"] = JsonSerializer.SerializeToElement("ada"),
                        ["email"] = JsonSerializer.SerializeToElement(request!.Message),
                    },
                }),
            },
        };
        await using McpClient client = await ConnectAsync(options);

        CallToolResult result = await client.CallToolAsync("test_elicitation", new Dictionary<string, object?> { ["message"] = "who are you?" });

        string text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
        Assert.StartsWith("User response: action=accept", text, StringComparison.Ordinal);
        Assert.Contains("\"username\":\"ada\"", text, StringComparison.Ordinal);
        Assert.Contains("\"email\":\"who are you?\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ListChanged_OutsideAnyRequest_ReachesTheClient()
    {
        var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = new McpClientOptions
        {
            Handlers = new McpClientHandlers
            {
                NotificationHandlers =
                [
                    new(NotificationMethods.ToolListChangedNotification, (_, _) =>
                    {
                        changed.TrySetResult();
                        return ValueTask.CompletedTask;
                    }),
                ],
            },
        };
        await using McpClient client = await ConnectAsync(options);

        // The child answers, then speaks: the notification goes to the GET stream (or waits for it).
        await client.CallToolAsync("test_list_changed_later", new Dictionary<string, object?>());

        await changed.Task.WaitAsync(Clients.Timeout);
    }

    [Fact]
    public async Task RawHttp_AnImmediateAnswerIsJson_ACallThatSpeaksFirstIsAnSseStream()
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage initialized = await http.SendAsync(Clients.Post(_gateway.Url, Clients.Initialize));
        Assert.Equal(HttpStatusCode.OK, initialized.StatusCode);
        string session = initialized.Headers.GetValues("Mcp-Session-Id").Single();

        HttpRequestMessage Post(string body)
        {
            HttpRequestMessage request = Clients.Post(_gateway.Url, body);
            request.Headers.Add("Mcp-Session-Id", session);
            request.Headers.Add("MCP-Protocol-Version", "2025-06-18");
            return request;
        }

        using (HttpResponseMessage notified = await http.SendAsync(Post("""{"jsonrpc":"2.0","method":"notifications/initialized"}""")))
        {
            Assert.Equal(HttpStatusCode.Accepted, notified.StatusCode);
        }

        using (HttpResponseMessage ping = await http.SendAsync(Post("""{"jsonrpc":"2.0","id":"p1","method":"ping"}""")))
        {
            Assert.Equal("application/json", ping.Content.Headers.ContentType?.MediaType);
            Assert.Equal("p1", (await Clients.ReadMessageAsync(ping))["id"]!.GetValue<string>());
        }

        using HttpResponseMessage call = await http.SendAsync(Post(
            """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok"}}}"""));
        Assert.Equal("text/event-stream", call.Content.Headers.ContentType?.MediaType);
        var messages = new List<JsonNode>();
        foreach (string line in (await call.Content.ReadAsStringAsync()).Split('\n'))
        {
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                messages.Add(JsonNode.Parse(line[5..])!);
            }
        }

        // Three progress notifications for its token, in order, then the response, which ends the stream.
        Assert.Equal(4, messages.Count);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal("notifications/progress", messages[i]["method"]!.GetValue<string>());
            Assert.Equal("tok", messages[i]["params"]!["progressToken"]!.GetValue<string>());
            Assert.Equal(i * 50, messages[i]["params"]!["progress"]!.GetValue<double>());
        }

        Assert.Equal(7, messages[3]["id"]!.GetValue<int>());
        Assert.NotNull(messages[3]["result"]);
    }

    [Fact]
    public async Task RawHttp_GetStream_OnePerSession()
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage initialized = await http.SendAsync(Clients.Post(_gateway.Url, Clients.Initialize));
        string session = initialized.Headers.GetValues("Mcp-Session-Id").Single();

        HttpRequestMessage Get()
        {
            var request = new HttpRequestMessage(HttpMethod.Get, _gateway.Url);
            request.Headers.Add("Accept", "text/event-stream");
            request.Headers.Add("Mcp-Session-Id", session);
            return request;
        }

        using HttpResponseMessage first = await http.SendAsync(Get(), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("text/event-stream", first.Content.Headers.ContentType?.MediaType);
        using HttpResponseMessage second = await http.SendAsync(Get(), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
    }

    private Task<McpClient> ConnectAsync(McpClientOptions options)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = _gateway.Url,
            TransportMode = HttpTransportMode.StreamableHttp,
            MaxReconnectionAttempts = 0,
        });
        // 2025-11-25: sessions, initialize, and the server's own requests (2026-07-28 has none of them).
        options.ProtocolVersion = "2025-11-25";
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        return McpClient.CreateAsync(transport, options, cancellationToken: timeout.Token);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        while (!condition())
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    /// <summary>Passing one makes the SDK send a progress token (what the server reports against).</summary>
    private sealed class Progress : IProgress<ProgressNotificationValue>
    {
        public void Report(ProgressNotificationValue value)
        {
        }
    }
}
