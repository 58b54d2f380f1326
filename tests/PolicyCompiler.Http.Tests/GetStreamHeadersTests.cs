using System.Net;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// A GET stream (basic/transports#listening-for-messages-from-the-server) may stay quiet for minutes: its
/// status and headers must reach the client at once, not with the first event. (Found by the conformance
/// runs: Kestrel's StartAsync buffered the headers until something was written.)
/// </summary>
public sealed class GetStreamHeadersTests : IAsyncLifetime
{
    private SdkHttpServer _server = null!;
    private TestGateway _gateway = null!;

    public async Task InitializeAsync()
    {
        _server = await SdkHttpServer.StartAsync();
        _gateway = await TestGateway.StartAsync(_server.Url);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task QuietGetStream_HeadersArriveBeforeAnyEvent()
    {
        using HttpClient http = Clients.Raw();
        using HttpResponseMessage initialized = await http.SendAsync(Clients.Post(_gateway.Url, Clients.Initialize));
        string session = initialized.Headers.GetValues("Mcp-Session-Id").Single();
        using (HttpRequestMessage notify = Clients.Post(_gateway.Url, """{"jsonrpc":"2.0","method":"notifications/initialized"}"""))
        {
            notify.Headers.Add("Mcp-Session-Id", session);
            notify.Headers.Add("MCP-Protocol-Version", "2025-06-18");
            using HttpResponseMessage accepted = await http.SendAsync(notify);
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        }

        using var get = new HttpRequestMessage(HttpMethod.Get, _gateway.Url);
        get.Headers.Add("Accept", "text/event-stream");
        get.Headers.Add("Mcp-Session-Id", session);
        get.Headers.Add("MCP-Protocol-Version", "2025-06-18");

        // The upstream sends nothing on this stream; without the flush this waits for the client's timeout.
        using HttpResponseMessage stream = await http.SendAsync(get, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        Assert.Equal(1, _server.Gets);
    }
}
