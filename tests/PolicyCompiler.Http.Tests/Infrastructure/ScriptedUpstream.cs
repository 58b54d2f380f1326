using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>
/// A minimal Streamable HTTP MCP server on a loopback Kestrel whose behaviour a test scripts: what the SDK server
/// never does on purpose — end sessions, close streams after an event id with <c>retry:</c>, resume on
/// <c>Last-Event-ID</c>, refuse credentials. By default: initialize opens a session (<c>s1</c>, <c>s2</c>…), a
/// notification is 202, a tools/call is answered "NAME ok" as JSON, GET is 405, DELETE ends the session, and a
/// request naming a session that is not live is 404.
/// </summary>
internal sealed class ScriptedUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _sessions;

    private ScriptedUpstream(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>Sessions the server answers for.</summary>
    public ConcurrentDictionary<string, bool> Live { get; } = new();

    /// <summary>Every request: method, session id, Last-Event-ID, and the JSON-RPC method of a POST.</summary>
    public ConcurrentQueue<(string Method, string? Session, string? LastEventId, string? RpcMethod)> Requests { get; } = new();

    /// <summary>Handles a request before the defaults (return true when it did); the message is the parsed POST body.</summary>
    public Func<HttpContext, JsonNode?, Task<bool>>? Script { get; set; }

    public static async Task<ScriptedUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        WebApplication app = builder.Build();
        var self = new ScriptedUpstream(app);
        app.Run(self.HandleAsync);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self.Url = new Uri(new Uri(address), "/mcp");
        return self;
    }

    public static JsonObject Result(JsonNode? id, JsonNode result) => new() { ["jsonrpc"] = "2.0", ["id"] = id?.DeepClone(), ["result"] = result };

    public static JsonObject ToolResult(JsonNode? id, string text) =>
        Result(id, new JsonObject { ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = text }) });

    /// <summary>Writes one SSE event and flushes it.</summary>
    public static async Task WriteEventAsync(HttpResponse response, string fields)
    {
        await response.WriteAsync(fields + "\n\n");
        await response.Body.FlushAsync();
    }

    public static void StartEventStream(HttpResponse response)
    {
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
    }

    private async Task HandleAsync(HttpContext context)
    {
        HttpRequest request = context.Request;
        string? session = request.Headers.TryGetValue("Mcp-Session-Id", out var s) ? s.ToString() : null;
        string? lastEventId = request.Headers.TryGetValue("Last-Event-ID", out var l) ? l.ToString() : null;
        JsonNode? message = null;
        if (HttpMethods.IsPost(request.Method))
        {
            using var reader = new StreamReader(request.Body, Encoding.UTF8);
            message = JsonNode.Parse(await reader.ReadToEndAsync());
        }

        string? rpcMethod = message?["method"]?.GetValue<string>();
        Requests.Enqueue((request.Method, session, lastEventId, rpcMethod));
        if (Script is { } script && await script(context, message))
        {
            return;
        }

        if (session is not null && !Live.ContainsKey(session))
        {
            context.Response.StatusCode = 404;
            return;
        }

        if (HttpMethods.IsGet(request.Method))
        {
            context.Response.StatusCode = 405;
            return;
        }

        if (HttpMethods.IsDelete(request.Method))
        {
            Live.TryRemove(session ?? "", out _);
            return;
        }

        switch (rpcMethod)
        {
            case "initialize":
                string id = "s" + Interlocked.Increment(ref _sessions);
                Live[id] = true;
                context.Response.Headers["Mcp-Session-Id"] = id;
                await context.Response.WriteAsJsonAsync(Result(message!["id"], new JsonObject
                {
                    ["protocolVersion"] = "2025-06-18",
                    ["capabilities"] = new JsonObject { ["tools"] = new JsonObject() },
                    ["serverInfo"] = new JsonObject { ["name"] = "scripted", ["version"] = "1" },
                }));
                return;
            case "tools/call":
                await context.Response.WriteAsJsonAsync(ToolResult(message!["id"], message["params"]!["name"]!.GetValue<string>() + " ok"));
                return;
            default:
                context.Response.StatusCode = message?["id"] is null ? 202 : 200;
                if (message?["id"] is { } requestId)
                {
                    await context.Response.WriteAsJsonAsync(Result(requestId, new JsonObject()));
                }

                return;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>
/// <c>StdioToHttpGateway</c> over in-memory pipes, driven with raw lines (what a local client writes on the
/// gateway's stdin and reads from its stdout).
/// </summary>
internal sealed class RawStdioBridge : IAsyncDisposable
{
    private readonly System.IO.Pipelines.Pipe _input = new();
    private readonly System.IO.Pipelines.Pipe _output = new();
    private readonly StreamReader _reader;

    public RawStdioBridge(Uri upstream, IReadOnlyList<KeyValuePair<string, string>>? headers = null, ILogger? logger = null)
    {
        Run = PolicyCompiler.Gateway.Transport.StreamableHttp.StdioToHttpGateway.RunAsync(
            _input.Reader, _output.Writer, upstream, headers ?? [], TestGateway.CreateEvaluator(), new PolicyCompiler.Gateway.GatewayOptions { Grant = "alice" }, logger: logger);
        _reader = new StreamReader(_output.Reader.AsStream(), Encoding.UTF8);
    }

    public Task<PolicyCompiler.Gateway.Transport.Stdio.GatewayRunResult> Run { get; }

    public async Task SendAsync(string line) => await _input.Writer.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"));

    /// <summary>The next line the client receives, parsed.</summary>
    public async Task<JsonNode> ReceiveAsync()
    {
        string? line = await _reader.ReadLineAsync().WaitAsync(Clients.Timeout);
        return JsonNode.Parse(line ?? throw new InvalidOperationException("the gateway closed its output"))!;
    }

    /// <summary>Lines until one with the given id arrives (that one is returned; the others are collected).</summary>
    public async Task<JsonNode> ReceiveResponseAsync(int id, List<JsonNode>? others = null)
    {
        while (true)
        {
            JsonNode message = await ReceiveAsync();
            if (message["id"] is JsonValue value && value.TryGetValue(out int got) && got == id && message["method"] is null)
            {
                return message;
            }

            others?.Add(message);
        }
    }

    /// <summary>initialize (id 1) and notifications/initialized, returning the initialize response.</summary>
    public async Task<JsonNode> HandshakeAsync()
    {
        await SendAsync(Clients.Initialize);
        JsonNode answer = await ReceiveResponseAsync(1);
        await SendAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""");
        return answer;
    }

    public Task SendCallAsync(int id, string tool) =>
        SendAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool + "\",\"arguments\":{}}}");

    public async ValueTask DisposeAsync()
    {
        await _input.Writer.CompleteAsync();
        await Run.WaitAsync(Clients.Timeout);
    }
}
