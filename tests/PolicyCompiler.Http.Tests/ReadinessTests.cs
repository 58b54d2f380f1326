using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// The admin listener's <c>/readyz</c>: ready only when the upstream answers an MCP initialize with the gateway's
/// credentials (the probe's session deleted at once); for stdio children, when a child runs or one can be started.
/// </summary>
public sealed class ReadinessTests
{
    [Fact]
    public async Task SdkUpstream_Ready_ThenNotReady_OnceItIsGone()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        SdkHttpServer server = await SdkHttpServer.StartAsync();
        await using TestGateway gateway = await TestGateway.StartAsync(server.Url, time: time);
        try
        {
            (HttpStatusCode status, string text) = await ReadyzAsync(gateway.Gateway);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.StartsWith("ready: the upstream answered initialize (protocol ", text, StringComparison.Ordinal);
            Assert.Equal(1, server.Deletes); // the probe's session was ended
            Assert.Empty(server.Calls);

            // A success stands for a few seconds: a second probe asks nothing.
            await ReadyzAsync(gateway.Gateway);
            Assert.Equal(1, server.Deletes);
        }
        finally
        {
            await server.DisposeAsync();
        }

        time.Advance(UpstreamProbe.SuccessLifetime);
        (HttpStatusCode gone, string why) = await ReadyzAsync(gateway.Gateway);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, gone);
        Assert.StartsWith("not ready: the upstream cannot be reached", why, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(401, "text/plain", "no", "not ready: the upstream refused the gateway's credentials (HTTP 401)")]
    [InlineData(403, "text/plain", "no", "not ready: the upstream refused the gateway's credentials (HTTP 403)")]
    [InlineData(500, "text/plain", "oops", "not ready: the upstream answered initialize with HTTP 500")]
    [InlineData(200, "text/html", "<html>login</html>", "not ready: the upstream's answer to initialize is not an MCP initialize result")]
    [InlineData(200, "application/json", """{"jsonrpc":"2.0","id":"policycompiler-readyz","error":{"code":-32600,"message":"no"}}""", "not ready: the upstream's answer to initialize is not an MCP initialize result")]
    public async Task UpstreamAnswersButNotAsAnMcpServer_NotReady(int status, string contentType, string body, string expected)
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        upstream.Script = async (context, _) =>
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = contentType;
            await context.Response.WriteAsync(body);
            return true;
        };
        await using TestGateway gateway = await TestGateway.StartAsync(upstream.Url);
        (HttpStatusCode code, string text) = await ReadyzAsync(gateway.Gateway);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, code);
        Assert.Equal(expected, text);
    }

    [Fact]
    public async Task ScriptedUpstream_SseInitializeResult_Ready_SessionDeleted_NoInitializedSent()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        upstream.Script = async (context, message) =>
        {
            if (message?["method"]?.GetValue<string>() != "initialize")
            {
                return false;
            }

            // As server-everything does: every POST answered as an SSE stream, here with a notification first.
            upstream.Live["probe-session"] = true;
            context.Response.Headers["Mcp-Session-Id"] = "probe-session";
            ScriptedUpstream.StartEventStream(context.Response);
            await ScriptedUpstream.WriteEventAsync(context.Response, """data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}""");
            await ScriptedUpstream.WriteEventAsync(context.Response, "data: " + ScriptedUpstream.Result(message["id"], new System.Text.Json.Nodes.JsonObject { ["protocolVersion"] = "2025-06-18" }).ToJsonString());
            return true;
        };
        await using TestGateway gateway = await TestGateway.StartAsync(upstream.Url, o => o.With(upstreamHeaders: [new("Authorization", "Bearer gateway-own")]));
        (HttpStatusCode code, string text) = await ReadyzAsync(gateway.Gateway);
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.Equal("ready: the upstream answered initialize (protocol 2025-06-18)", text);
        Assert.Empty(upstream.Live);
        Assert.Equal(["POST initialize", "DELETE "], upstream.Requests.Select(r => r.Method + " " + r.RpcMethod).ToArray());
    }

    [Fact]
    public async Task StdioChildren_ReadyWhenTheCommandStartsAndAnswers_TheProbeChildEnds()
    {
        string server = Path.Combine(Repo.Root, "tests", "Servers", "EksLikeServer", "bin", Repo.Configuration, "net10.0", "EksLikeServer.dll");
        ILogger logger = new StderrLoggerProvider(LogLevel.None, "readyz-test").CreateLogger("gateway");
        using var children = new ChildProcessHandler("dotnet", [server], TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(5), logger);
        await using HttpGateway gateway = await StartChildGatewayAsync(children, logger);
        (HttpStatusCode code, string text) = await ReadyzAsync(gateway);
        Assert.Equal(HttpStatusCode.OK, code);
        Assert.StartsWith("ready: the upstream answered initialize", text, StringComparison.Ordinal);
        Assert.Equal(0, children.Children); // the probe's DELETE ended its child
    }

    [Theory]
    [InlineData("/nonexistent/mcp-server")]
    [InlineData("false")]
    public async Task StdioChildren_CommandCannotStartOrDies_NotReady(string command)
    {
        ILogger logger = new StderrLoggerProvider(LogLevel.None, "readyz-test").CreateLogger("gateway");
        using var children = new ChildProcessHandler(command, [], TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(5), logger);
        await using HttpGateway gateway = await StartChildGatewayAsync(children, logger);
        (HttpStatusCode code, string text) = await ReadyzAsync(gateway);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, code);
        Assert.StartsWith("not ready: the upstream answered initialize with HTTP 502", text, StringComparison.Ordinal);
    }

    private static Task<HttpGateway> StartChildGatewayAsync(ChildProcessHandler children, ILogger logger) =>
        HttpGateway.StartAsync(
            new HttpGatewayOptions
            {
                Listen = new IPEndPoint(IPAddress.Loopback, 0),
                Admin = new IPEndPoint(IPAddress.Loopback, 0),
                Upstream = new Uri("http://stdio-child.invalid/mcp"),
            },
            TestGateway.CreateEvaluator(),
            null,
            logger,
            children);

    private static async Task<(HttpStatusCode Status, string Text)> ReadyzAsync(HttpGateway gateway)
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage response = await http.GetAsync(new Uri($"http://{gateway.AdminEndPoint}/readyz"));
        return (response.StatusCode, (await response.Content.ReadAsStringAsync()).TrimEnd('\n'));
    }
}
