using System.Net;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary><c>http --upstream URL</c> when the upstream ends a session: the client sees the 404 (and re-initializes), the gateway forgets the session.</summary>
public sealed class HttpSessionEndTests
{
    [Fact]
    public async Task Upstream404ForTheSession_ReachesTheClient_AndTheGatewayForgetsTheSession()
    {
        await using ScriptedUpstream upstream = await ScriptedUpstream.StartAsync();
        await using TestGateway gateway = await TestGateway.StartAsync(upstream.Url);
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage init = await http.SendAsync(Clients.Post(gateway.Url, Clients.Initialize));
        string session = init.Headers.GetValues("Mcp-Session-Id").Single();
        Assert.Equal(1, gateway.Gateway.ActiveSessions);

        upstream.Live.Clear(); // the server ends the session
        Assert.Equal(HttpStatusCode.NotFound, (await SendListAsync(http, gateway.Url, session)).StatusCode);
        Assert.Equal(0, gateway.Gateway.ActiveSessions);

        // The gateway answers the stale id itself now: the upstream sees no further request for it.
        int before = upstream.Requests.Count;
        Assert.Equal(HttpStatusCode.NotFound, (await SendListAsync(http, gateway.Url, session)).StatusCode);
        Assert.Equal(before, upstream.Requests.Count);
    }

    private static Task<HttpResponseMessage> SendListAsync(HttpClient http, Uri url, string session)
    {
        HttpRequestMessage request = Clients.Post(url, """{"jsonrpc":"2.0","id":2,"method":"tools/list"}""");
        request.Headers.Add("Mcp-Session-Id", session);
        request.Headers.Add("MCP-Protocol-Version", "2025-06-18");
        return http.SendAsync(request);
    }
}
