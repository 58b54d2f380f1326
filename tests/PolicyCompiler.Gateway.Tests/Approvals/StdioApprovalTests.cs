using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;
using PolicyCompiler.Gateway.Transport.Stdio;

namespace PolicyCompiler.Gateway.Tests.Approvals;

/// <summary>
/// Held calls in the stdio gateway (docs/approvals.md): the test plays the client (with and without the
/// elicitation capability), the upstream and the approver (the broker, as the admin API calls it).
/// "Nothing reached the upstream" is proved by sending an allowed call next: it must be the next line the upstream reads.
/// </summary>
public sealed class StdioApprovalTests : IAsyncDisposable
{
    private const string Initialize = """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"ops-console","version":"1"}}}""";
    private const string InitializeWithoutElicitation = """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{}},"clientInfo":{"name":"headless","version":"1"}}}""";
    private const string InitializeResult = """{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"up","version":"1"}}}""";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly FakeEvaluator _policy = new();
    private readonly ApprovalBroker _broker;
    private readonly GatewayHarness _gateway;

    public StdioApprovalTests()
    {
        _policy.NeedsApproval.Add("delete_cluster");
        _broker = new ApprovalBroker(_time);
        _gateway = new GatewayHarness(_policy, new GatewayOptions { Grant = "alice", Session = "s1", Approvals = _broker });
    }

    public async ValueTask DisposeAsync()
    {
        await _gateway.DisposeAsync();
        _broker.Dispose();
    }

    private static string Call(string id, string tool = "delete_cluster", string arguments = """{"name":"prod"}""") =>
        "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool + "\",\"arguments\":" + arguments + "}}";

    private async Task InitializeAsync(string initialize)
    {
        await _gateway.ClientSendAsync(initialize);
        Assert.Equal(initialize, await _gateway.UpstreamReceiveAsync());
        await _gateway.UpstreamSendAsync(InitializeResult);
        Assert.Equal(InitializeResult, await _gateway.ClientReceiveAsync());
    }

    private async Task<PendingApproval> WaitForPendingAsync(int count = 1)
    {
        for (int i = 0; i < 2000 && _broker.Count < count; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(count, _broker.Count);
        return _broker.List()[^1];
    }

    /// <summary>Proves nothing else reached the upstream: an allowed call sent now is the very next line it reads.</summary>
    private async Task AssertUpstreamGotNothingElseAsync(string id)
    {
        string probe = Call(id, "list_clusters", "{}");
        await _gateway.ClientSendAsync(probe);
        Assert.Equal(probe, await _gateway.UpstreamReceiveAsync());
        await _gateway.UpstreamSendAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"result\":{\"content\":[]}}");
        using JsonDocument answer = JsonDocument.Parse((await _gateway.ClientReceiveAsync())!);
        Assert.Equal(id.Trim('"'), answer.RootElement.GetProperty("id").ToString());
    }

    private static JsonElement Parse(string? line)
    {
        Assert.NotNull(line);
        return JsonDocument.Parse(line).RootElement;
    }

    [Fact]
    public async Task HeldCall_ApprovedThroughTheAdminApi_IsForwardedExactly_AndReservesOnlyThen()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        string call = Call("1", arguments: """{ "name" : "prod",  "force": true }""");
        await _gateway.ClientSendAsync(call);
        PendingApproval approval = await WaitForPendingAsync();
        Assert.Equal("""{"force":true,"name":"prod"}""", approval.Arguments);
        Assert.Equal("s1", approval.Session);
        Assert.Equal("alice", approval.Grant);
        Assert.Equal("/tools/delete_cluster/rules/0", approval.Rule);
        Assert.Equal(0, _policy.Counters.Reserved);

        Assert.Equal(AnswerResult.Answered, _broker.Answer(approval.Id, approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin));
        Assert.Equal(call, await _gateway.UpstreamReceiveAsync()); // the original bytes, spacing and key order kept
        Assert.Equal(1, _policy.Counters.Reserved);

        await _gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"deleted"}]}}""");
        Assert.Contains("deleted", await _gateway.ClientReceiveAsync());
        Assert.Equal(1, _policy.Counters.Committed);
    }

    [Fact]
    public async Task HeldCall_Denied_IsAnsweredWithTheNote_AndNeverReachesTheUpstream()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        await _gateway.ClientSendAsync(Call("\"d1\""));
        PendingApproval approval = await WaitForPendingAsync();
        _broker.Answer(approval.Id, approve: false, "bob", "not during the freeze", ApprovalScope.Call, ApprovalChannel.Admin);

        JsonElement reply = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal("d1", reply.GetProperty("id").GetString());
        Assert.True(reply.GetProperty("result").GetProperty("isError").GetBoolean());
        string text = reply.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.Contains("approval denied by bob: not during the freeze", text);
        Assert.Equal(0, _policy.Counters.Reserved);
        await AssertUpstreamGotNothingElseAsync("2");
    }

    [Fact]
    public async Task HeldCall_NobodyAnswers_TimesOut()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        await _gateway.ClientSendAsync(Call("5"));
        await WaitForPendingAsync();
        _time.Advance(ApprovalBroker.DefaultTimeout);

        JsonElement reply = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal(5, reply.GetProperty("id").GetInt32());
        Assert.Contains("timed out", reply.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        await AssertUpstreamGotNothingElseAsync("6");
    }

    [Fact]
    public async Task CancelWhilePending_WithdrawsTheApproval_AndTheClientGetsNoAnswer()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        await _gateway.ClientSendAsync(Call("9"));
        PendingApproval approval = await WaitForPendingAsync();
        await _gateway.ClientSendAsync("""{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"user gave up"}}""");
        Assert.Equal(ApprovalStatus.Withdrawn, (await approval.Completion.WaitAsync(TimeSpan.FromSeconds(20))).Status);
        Assert.Equal(AnswerResult.AlreadyAnswered, _broker.Answer(approval.Id, approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin));

        // Neither the cancellation nor the call reach the upstream, and the next thing the client reads is the probe's answer.
        await AssertUpstreamGotNothingElseAsync("10");

        // The id is free again.
        await _gateway.ClientSendAsync(Call("9"));
        await WaitForPendingAsync();
    }

    [Fact]
    public async Task DuplicateIdOfAHeldCall_IsRefused()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        await _gateway.ClientSendAsync(Call("3"));
        await WaitForPendingAsync();
        await _gateway.ClientSendAsync(Call("3", "list_clusters", "{}"));
        JsonElement reply = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal(JsonRpcErrorCodes.InvalidRequest, reply.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(1, _broker.Count);
    }

    [Fact]
    public async Task TwoPendingApprovals_AnsweredOutOfOrder_EachGetsItsOwnOutcome()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        string first = Call("11", arguments: """{"name":"a"}""");
        string second = Call("12", arguments: """{"name":"b"}""");
        await _gateway.ClientSendAsync(first);
        await _gateway.ClientSendAsync(second);
        await WaitForPendingAsync(2);
        PendingApproval firstApproval = _broker.List().Single(a => a.Arguments.Contains("\"a\""));
        PendingApproval secondApproval = _broker.List().Single(a => a.Arguments.Contains("\"b\""));

        _broker.Answer(secondApproval.Id, approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin);
        Assert.Equal(second, await _gateway.UpstreamReceiveAsync());
        _broker.Answer(firstApproval.Id, approve: false, "bob", "wrong cluster", ApprovalScope.Call, ApprovalChannel.Admin);
        JsonElement denied = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal(11, denied.GetProperty("id").GetInt32());
        Assert.Contains("wrong cluster", denied.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(1, _policy.Counters.Reserved);
        await AssertUpstreamGotNothingElseAsync("13");
    }

    [Fact]
    public async Task ApprovedCall_HittingALimit_IsAnsweredRateLimited_AndNotForwarded()
    {
        var policy = new LimitedAfterApproval();
        var broker = new ApprovalBroker(_time);
        await using var gateway = new GatewayHarness(policy, new GatewayOptions { Grant = "alice", Session = "s1", Approvals = broker });
        await gateway.ClientSendAsync(Call("1"));
        for (int i = 0; i < 2000 && broker.Count == 0; i++)
        {
            await Task.Delay(10);
        }

        broker.Answer(broker.List()[0].Id, approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin);
        JsonElement reply = Parse(await gateway.ClientReceiveAsync());
        Assert.Equal("rate_limited", reply.GetProperty("result").GetProperty("_meta").GetProperty("policycompiler/decision").GetProperty("decision").GetString());
    }

    [Fact]
    public async Task UpstreamExit_AnswersHeldCallsWithAnError()
    {
        await InitializeAsync(InitializeWithoutElicitation);
        await _gateway.ClientSendAsync(Call("21"));
        PendingApproval approval = await WaitForPendingAsync();
        await _gateway.CloseUpstreamAsync();
        JsonElement reply = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal(21, reply.GetProperty("id").GetInt32());
        Assert.Equal(JsonRpcErrorCodes.UpstreamClosed, reply.GetProperty("error").GetProperty("code").GetInt32());
        Assert.Equal(ApprovalStatus.Withdrawn, (await approval.Completion).Status);
        GatewayRunResult result = await _gateway.Run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(1, result.UnansweredRequests);
    }

    [Fact]
    public async Task ClientWithElicitation_IsAsked_AndItsAcceptForwardsTheCall()
    {
        await InitializeAsync(Initialize);
        string call = Call("1");
        await _gateway.ClientSendAsync(call);
        JsonElement elicitation = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal("elicitation/create", elicitation.GetProperty("method").GetString());
        string elicitationId = elicitation.GetProperty("id").GetString()!;
        Assert.StartsWith("policycompiler-approval-", elicitationId);
        JsonElement parameters = elicitation.GetProperty("params");
        Assert.Contains("delete_cluster", parameters.GetProperty("message").GetString());
        Assert.Contains("{\"name\":\"prod\"}", parameters.GetProperty("message").GetString());
        JsonElement schema = parameters.GetProperty("requestedSchema");
        Assert.Equal("object", schema.GetProperty("type").GetString());
        Assert.Equal(["approve", "deny"], schema.GetProperty("properties").GetProperty("decision").GetProperty("enum").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.All(schema.GetProperty("properties").EnumerateObject(), p => Assert.Equal("string", p.Value.GetProperty("type").GetString()));

        await _gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":\"" + elicitationId + "\",\"result\":{\"action\":\"accept\",\"content\":{\"decision\":\"approve\",\"note\":\"ok\"}}}");
        // The call reaches the upstream; the elicitation answer does not (the upstream never asked).
        Assert.Equal(call, await _gateway.UpstreamReceiveAsync());
        Assert.Equal(0, _broker.Count);
        await AssertUpstreamGotNothingElseAsync("2");
    }

    [Fact]
    public async Task Revision20260728_CapabilitiesInMeta_OfDiscoverOrOfTheCallItself_AreHonoured()
    {
        // No initialize in 2026-07-28: server/discover and each request carry the client's capabilities in _meta.
        const string discover = """{"jsonrpc":"2.0","id":0,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"new-client","version":"1"},"io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}}""";
        await _gateway.ClientSendAsync(discover);
        Assert.Equal(discover, await _gateway.UpstreamReceiveAsync());
        await _gateway.ClientSendAsync(Call("1"));
        JsonElement elicitation = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal("elicitation/create", elicitation.GetProperty("method").GetString());
        await _gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":\"" + elicitation.GetProperty("id").GetString() + "\",\"result\":{\"action\":\"decline\"}}");
        Assert.Contains("approval denied by new-client", await _gateway.ClientReceiveAsync());

        // A call whose own _meta says the client cannot show a form (url only) is left to the admin API.
        await _gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_cluster","arguments":{},"_meta":{"io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}}}""");
        await WaitForPendingAsync();
        await AssertUpstreamGotNothingElseAsync("3");
    }

    [Theory]
    [InlineData("""{"action":"decline"}""", "declined in the client")]
    [InlineData("""{"action":"cancel"}""", "dismissed in the client")]
    [InlineData("""{"action":"accept","content":{"decision":"deny","note":"not now"}}""", "approval denied by ops-console: not now")]
    public async Task ClientWithElicitation_RefusingAnswers_DenyTheCall(string result, string expected)
    {
        await InitializeAsync(Initialize);
        await _gateway.ClientSendAsync(Call("1"));
        string elicitationId = Parse(await _gateway.ClientReceiveAsync()).GetProperty("id").GetString()!;
        await _gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":\"" + elicitationId + "\",\"result\":" + result + "}");
        JsonElement reply = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal(1, reply.GetProperty("id").GetInt32());
        Assert.Contains(expected, reply.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        await AssertUpstreamGotNothingElseAsync("2");
    }

    [Fact]
    public async Task AdminAnswerWhileTheElicitationIsOpen_CancelsTheElicitationInTheClient()
    {
        await InitializeAsync(Initialize);
        await _gateway.ClientSendAsync(Call("1"));
        string elicitationId = Parse(await _gateway.ClientReceiveAsync()).GetProperty("id").GetString()!;
        _broker.Answer(_broker.List()[0].Id, approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin);
        Assert.Equal(Call("1"), await _gateway.UpstreamReceiveAsync());
        JsonElement cancelled = Parse(await _gateway.ClientReceiveAsync());
        Assert.Equal("notifications/cancelled", cancelled.GetProperty("method").GetString());
        Assert.Equal(elicitationId, cancelled.GetProperty("params").GetProperty("requestId").GetString());

        // A late answer to the cancelled elicitation is not forwarded either (it would confuse the upstream) — nor acted on.
        await _gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":\"" + elicitationId + "\",\"result\":{\"action\":\"decline\"}}");
        await AssertUpstreamGotNothingElseAsync("2");
    }

    [Fact]
    public async Task SessionScopedApproval_LetsTheSameCallThroughWithoutAsking_ButNotADifferentOne()
    {
        await InitializeAsync(Initialize);
        await _gateway.ClientSendAsync(Call("1"));
        string elicitationId = Parse(await _gateway.ClientReceiveAsync()).GetProperty("id").GetString()!;
        await _gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":\"" + elicitationId + "\",\"result\":{\"action\":\"accept\",\"content\":{\"decision\":\"approve\",\"scope\":\"session\"}}}");
        Assert.Equal(Call("1"), await _gateway.UpstreamReceiveAsync());

        string again = Call("2", arguments: """{"name": "prod"}""");
        await _gateway.ClientSendAsync(again);
        Assert.Equal(again, await _gateway.UpstreamReceiveAsync());
        Assert.Equal(2, _policy.Counters.Reserved);

        await _gateway.ClientSendAsync(Call("3", arguments: """{"name":"staging"}"""));
        Assert.Equal("elicitation/create", Parse(await _gateway.ClientReceiveAsync()).GetProperty("method").GetString());
    }

    [Fact]
    public async Task PolicyTimeout_OfTheEntry_AndOfTheTopLevel_DecideWhenAHeldCallTimesOut()
    {
        var parsed = PolicyCompiler.Policy.Language.PolicyParser.Parse("p.json", System.Text.Encoding.UTF8.GetBytes("""
            { "version": "1", "approval": { "timeout": "10m" }, "tools": {
              "delete_cluster": { "action": "approve", "approval": { "timeout": "30s" } },
              "delete_nodegroup": { "action": "approve" } } }
            """));
        var interpreter = new PolicyCompiler.Policy.Interpretation.PolicyInterpreter(parsed.Policy!);
        var broker = new ApprovalBroker(_time);
        await using var gateway = new GatewayHarness(interpreter, new GatewayOptions { Grant = "alice", Session = "s1", Approvals = broker });
        await gateway.ClientSendAsync(Call("1"));
        await gateway.ClientSendAsync(Call("2", "delete_nodegroup"));
        for (int i = 0; i < 2000 && broker.Count < 2; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(30), broker.List().Single(a => a.Tool == "delete_cluster").ExpiresAt);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromMinutes(10), broker.List().Single(a => a.Tool == "delete_nodegroup").ExpiresAt);
        _time.Advance(TimeSpan.FromSeconds(30));
        JsonElement reply = Parse(await gateway.ClientReceiveAsync());
        Assert.Equal(1, reply.GetProperty("id").GetInt32());
        Assert.Contains("within 30 s", reply.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(1, broker.Count);
    }

    [Fact]
    public async Task WithoutABroker_ApprovalRequiredIsDenied_SayingApprovalsAreUnavailable()
    {
        var policy = new FakeEvaluator();
        policy.NeedsApproval.Add("delete_cluster");
        await using var gateway = new GatewayHarness(policy);
        await gateway.ClientSendAsync(Call("1"));
        Assert.Contains("approvals are not available", await gateway.ClientReceiveAsync());
    }

    /// <summary>Needs approval, and once approved its limit is exhausted.</summary>
    private sealed class LimitedAfterApproval : PolicyCompiler.Policy.Runtime.IPolicyEvaluator
    {
        public PolicyCompiler.Policy.Runtime.PolicyInfo Policy { get; } = new("fake", new string('a', 64), PolicyCompiler.Policy.Language.PolicyMode.Enforce, "{}");

        public PolicyCompiler.Policy.Runtime.Decision Evaluate(in PolicyCompiler.Policy.Runtime.ToolCall call) => PolicyCompiler.Policy.Runtime.Decision.ApprovalRequired("/tools/delete_cluster/action", "a human must approve");

        public PolicyCompiler.Policy.Runtime.Decision ReserveLimits(in PolicyCompiler.Policy.Runtime.ToolCall call) =>
            PolicyCompiler.Policy.Runtime.Decision.RateLimited("/tools/delete_cluster/limits/0", "at most 1 delete a day", "deletes", TimeSpan.FromHours(3));

        public bool IsListed(ReadOnlySpan<byte> toolNameUtf8) => true;
    }
}
