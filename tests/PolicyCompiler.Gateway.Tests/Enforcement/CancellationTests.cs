using System.Text.Json;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;
using PolicyCompiler.Gateway.Transport.Stdio;

namespace PolicyCompiler.Gateway.Tests.Enforcement;

/// <summary><c>notifications/cancelled</c> from the client (MCP basic/utilities/cancellation).</summary>
public sealed class CancellationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pc-cancel-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Call(int id, string tool = "list_clusters") =>
        "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool + "\"}}";

    private static string Cancel(string requestId) =>
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":" + requestId + ",\"reason\":\"user gave up\"}}";

    [Fact]
    public async Task CancelledCall_IsForgotten_CommittedAndTheNotificationForwarded()
    {
        var policy = new FakeEvaluator();
        var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync(Call(7));
        Assert.Equal(Call(7), await gateway.UpstreamReceiveAsync());
        await gateway.ClientSendAsync(Cancel("7"));
        Assert.Equal(Cancel("7"), await gateway.UpstreamReceiveAsync());

        // The call reached the server: its counters stay taken.
        Assert.Equal(1, policy.Counters.Committed);
        Assert.Equal(0, policy.Counters.RolledBack);

        // The id is free again: a new request with it is forwarded, not refused as "already in flight".
        await gateway.ClientSendAsync(Call(7));
        Assert.Equal(Call(7), await gateway.UpstreamReceiveAsync());

        // Only that new request is left waiting when the server exits: the cancelled one leaked nothing.
        await gateway.CloseUpstreamAsync();
        using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
        Assert.Equal(JsonRpcErrorCodes.UpstreamClosed, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
        GatewayRunResult result = await gateway.Run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(GatewayStop.UpstreamClosed, result.Stop);
        Assert.Equal(1, result.UnansweredRequests);
        Assert.Equal(1, policy.Counters.RolledBack);
    }

    [Fact]
    public async Task ResponseArrivingAfterTheCancellation_IsForwardedUnchanged_AndNotCommittedTwice()
    {
        var policy = new FakeEvaluator();
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync(Call(3));
        await gateway.UpstreamReceiveAsync();
        await gateway.ClientSendAsync(Cancel("3"));
        await gateway.UpstreamReceiveAsync();

        const string late = """{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"done anyway"}]}}""";
        await gateway.UpstreamSendAsync(late);
        Assert.Equal(late, await gateway.ClientReceiveAsync());
        Assert.Equal(1, policy.Counters.Committed);
    }

    [Fact]
    public async Task LateAnswerToACancelledToolsList_IsStillFiltered()
    {
        var policy = new FakeEvaluator();
        policy.Hidden.Add("get_secret");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":"l1","method":"tools/list"}""");
        await gateway.UpstreamReceiveAsync();
        await gateway.ClientSendAsync(Cancel("\"l1\""));
        await gateway.UpstreamReceiveAsync();

        await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":"l1","result":{"tools":[{"name":"get_secret"},{"name":"ls"}]}}""");
        string reply = (await gateway.ClientReceiveAsync())!;
        Assert.DoesNotContain("get_secret", reply);
        Assert.Contains("\"ls\"", reply);
    }

    [Fact]
    public async Task CancellationOfAnUnknownOrRefusedRequest_JustPasses()
    {
        var policy = new FakeEvaluator();
        policy.Denied.Add("rm");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync(Call(1, "rm"));
        Assert.Contains("Blocked by policy", await gateway.ClientReceiveAsync());
        await gateway.ClientSendAsync(Cancel("1"));
        await gateway.ClientSendAsync(Cancel("99"));
        Assert.Equal(Cancel("1"), await gateway.UpstreamReceiveAsync());
        Assert.Equal(Cancel("99"), await gateway.UpstreamReceiveAsync());
        Assert.Equal(0, policy.Counters.Committed);
    }

    [Fact]
    public async Task CancelledCall_IsAuditedAsCancelled()
    {
        string file = Path.Combine(_directory, "audit.jsonl");
        AuditLog audit = AuditLog.Open(file, new AuditLogOptions { GatewayName = "g", PolicySha256 = new string('b', 64) });
        var policy = new FakeEvaluator();
        var gateway = new GatewayHarness(policy, audit: audit);
        await gateway.ClientSendAsync(Call(4));
        await gateway.UpstreamReceiveAsync();
        await gateway.ClientSendAsync(Cancel("4"));
        await gateway.UpstreamReceiveAsync();
        await gateway.CloseClientAsync();
        await gateway.CloseUpstreamAsync();
        GatewayRunResult result = await gateway.Run.WaitAsync(TimeSpan.FromSeconds(20));
        await audit.DisposeAsync();

        Assert.Equal(0, result.UnansweredRequests);
        string[] lines = File.ReadAllLines(file);
        Assert.Equal(2, lines.Length);
        using JsonDocument upstream = JsonDocument.Parse(lines[1]);
        Assert.Equal("upstream", upstream.RootElement.GetProperty("event").GetString());
        Assert.Equal(4, upstream.RootElement.GetProperty("id").GetInt32());
        Assert.Equal("cancelled", upstream.RootElement.GetProperty("outcome").GetString());
    }
}
