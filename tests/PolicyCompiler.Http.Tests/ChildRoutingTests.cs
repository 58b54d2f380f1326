using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// <c>GATEWAY http -- COMMAND</c> with scripted children (<c>sh</c>): a request's answer is found by its id
/// however the child orders its answers, the child reads each request as one whole line, and a child that
/// exits while a request waits fails that request (502) instead of leaving it hanging. The child's answers
/// reach the waiting request on the thread that reads the child's output (no thread-pool hop), so these
/// also pin down that nothing is routed while the session's lock is held. A session whose initialize was
/// never answered ends with its client's request.
/// </summary>
public sealed class ChildRoutingTests
{
    private const string AllowAll = """{ "version": "1", "name": "allow-all-tests", "default": "allow" }""";

    // The initialize answer every script gives first (the raw client's initialize has id 1).
    private const string InitializeAnswer = """{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"scripted","version":"1"}}}""";

    [Fact]
    public async Task AnswersInAnotherOrder_EachReachesItsRequest()
    {
        // Reads initialize, then two requests, and answers the second before the first.
        string script = $$$"""
            read init; echo '{{{InitializeAnswer}}}'
            read first; read second
            echo '{"jsonrpc":"2.0","id":"b","result":{"which":"second"}}'
            echo '{"jsonrpc":"2.0","id":"a","result":{"which":"first"}}'
            cat > /dev/null
            """;
        await using Scripted scripted = await Scripted.StartAsync(script);
        using HttpClient http = Clients.Raw();
        string session = await scripted.InitializeAsync(http);

        // Both in flight at once (the child answers neither before it has read both), in either order.
        Task<HttpResponseMessage> first = http.SendAsync(scripted.Post(session, """{"jsonrpc":"2.0","id":"a","method":"ping"}"""));
        using HttpResponseMessage second = await http.SendAsync(scripted.Post(session, """{"jsonrpc":"2.0","id":"b","method":"ping"}"""));
        using HttpResponseMessage firstAnswer = await first.WaitAsync(Clients.Timeout);

        Assert.Equal("application/json", second.Content.Headers.ContentType?.MediaType);
        JsonNode b = await Clients.ReadMessageAsync(second);
        Assert.Equal("b", b["id"]!.GetValue<string>());
        Assert.Equal("second", b["result"]!["which"]!.GetValue<string>());
        JsonNode a = await Clients.ReadMessageAsync(firstAnswer);
        Assert.Equal("a", a["id"]!.GetValue<string>());
        Assert.Equal("first", a["result"]!["which"]!.GetValue<string>());
    }

    [Fact]
    public async Task TheChildReadsEachRequestAsOneLine_ExactlyTheClientsBytes()
    {
        // Echoes back, as a string in its answer's result, the length of every line it reads (shell `read -r`
        // gives the line without its newline), so a request written in pieces or with extra bytes would show.
        string script = $$$$"""
            read -r init; echo '{{{{InitializeAnswer}}}}'
            read -r notification
            read -r request; echo "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"length\":${#request},\"notification\":${#notification}}}"
            cat > /dev/null
            """;
        await using Scripted scripted = await Scripted.StartAsync(script);
        using HttpClient http = Clients.Raw();
        string session = await scripted.InitializeAsync(http);
        const string Notification = """{"jsonrpc":"2.0","method":"notifications/initialized"}""";
        const string Request = """{"jsonrpc":"2.0","id":5,"method":"ping","params":{"note":"ünïcödé"}}""";
        using (HttpResponseMessage notified = await http.SendAsync(scripted.Post(session, Notification)))
        {
            Assert.Equal(HttpStatusCode.Accepted, notified.StatusCode);
        }

        using HttpResponseMessage answered = await http.SendAsync(scripted.Post(session, Request));
        JsonNode answer = await Clients.ReadMessageAsync(answered);
        Assert.Equal(5, answer["id"]!.GetValue<int>());
        // sh counts characters or bytes depending on its locale; both are the request's, never more.
        int length = answer["result"]!["length"]!.GetValue<int>();
        Assert.True(length == Request.Length || length == System.Text.Encoding.UTF8.GetByteCount(Request), $"the child read {length} characters");
        Assert.Equal(Notification.Length, answer["result"]!["notification"]!.GetValue<int>());
    }

    [Fact]
    public async Task ChildExitsWhileARequestWaits_TheRequestFails_TheSessionIsGone()
    {
        // Answers initialize, then exits on the next request without answering it.
        string script = $$$"""
            read init; echo '{{{InitializeAnswer}}}'
            read request
            exit 0
            """;
        await using Scripted scripted = await Scripted.StartAsync(script);
        using HttpClient http = Clients.Raw();
        string session = await scripted.InitializeAsync(http);

        using HttpResponseMessage failed = await http.SendAsync(scripted.Post(session, """{"jsonrpc":"2.0","id":2,"method":"ping"}""")).WaitAsync(Clients.Timeout);
        Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);

        // The child is gone and so is its session: the next request is 404 (the client re-initializes).
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        while (scripted.Children.Children > 0)
        {
            await Task.Delay(20, timeout.Token);
        }

        using HttpResponseMessage after = await http.SendAsync(scripted.Post(session, """{"jsonrpc":"2.0","id":3,"method":"ping"}"""));
        Assert.Equal(HttpStatusCode.NotFound, after.StatusCode);
    }

    [Fact]
    public async Task ClientGivesUpBeforeInitializeIsAnswered_TheChildEnds()
    {
        // Never answers initialize (a slow server, or a /readyz probe's timeout): nobody learns the session's
        // id, so its child must not live on until the idle timeout.
        await using Scripted scripted = await Scripted.StartAsync("cat > /dev/null");
        using HttpClient http = Clients.Raw();
        using (var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.SendAsync(Clients.Post(scripted.Gateway.Url, Clients.Initialize), giveUp.Token));
        }

        using var timeout = new CancellationTokenSource(Clients.Timeout);
        while (scripted.Children.Children > 0)
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    /// <summary>An in-process gateway whose children run <c>sh -c SCRIPT</c>.</summary>
    private sealed class Scripted : IAsyncDisposable
    {
        private Scripted(ChildProcessHandler children, HttpGateway gateway)
        {
            Children = children;
            Gateway = gateway;
        }

        public ChildProcessHandler Children { get; }

        public HttpGateway Gateway { get; }

        public static async Task<Scripted> StartAsync(string script)
        {
            ILogger logger = new StderrLoggerProvider(LogLevel.None, "child-routing-gateway").CreateLogger("gateway");
            var children = new ChildProcessHandler("sh", ["-c", script], TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(2), logger);
            var options = new HttpGatewayOptions { Listen = new IPEndPoint(IPAddress.Loopback, 0), Upstream = new Uri("http://stdio-child.invalid/mcp") };
            return new Scripted(children, await HttpGateway.StartAsync(options, TestGateway.CreateEvaluator(AllowAll), null, logger, children));
        }

        public async Task<string> InitializeAsync(HttpClient http)
        {
            using HttpResponseMessage initialized = await http.SendAsync(Clients.Post(Gateway.Url, Clients.Initialize));
            Assert.Equal(HttpStatusCode.OK, initialized.StatusCode);
            Assert.Equal("scripted", (await Clients.ReadMessageAsync(initialized))["result"]!["serverInfo"]!["name"]!.GetValue<string>());
            return initialized.Headers.GetValues("Mcp-Session-Id").Single();
        }

        public HttpRequestMessage Post(string session, string body)
        {
            HttpRequestMessage request = Clients.Post(Gateway.Url, body);
            request.Headers.Add("Mcp-Session-Id", session);
            request.Headers.Add("MCP-Protocol-Version", "2025-06-18");
            return request;
        }

        public async ValueTask DisposeAsync()
        {
            await Gateway.DisposeAsync();
            Children.Dispose();
        }
    }
}
