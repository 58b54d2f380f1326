using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Tests.Approvals;

/// <summary>The approval broker on its own: ids, answers, timeouts (fake time), scopes, audit and metrics.</summary>
public sealed class ApprovalBrokerTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pc-approvals-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static ApprovalRequest Request(string session = "s1", string tool = "delete_cluster", string arguments = """{"name":"prod"}""", int id = 1, TimeSpan? timeout = null) =>
        ApprovalBroker.Prepare(RequestId.FromInteger(id), "alice", session, Encoding.UTF8.GetBytes(tool), Encoding.UTF8.GetBytes(arguments), "/tools/delete_cluster/action", "deletes need a human", timeout ?? TimeSpan.FromMinutes(2));

    [Fact]
    public async Task Approve_CompletesTheCall_AndASecondAnswerIsAConflict()
    {
        using var broker = new ApprovalBroker(_time);
        PendingApproval approval = broker.Register(Request())!;
        Assert.Matches("^apr_[0-9a-f]{32}$", approval.Id);
        Assert.Equal(approval.Id, Assert.Single(broker.List()).Id);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromMinutes(2), approval.ExpiresAt);
        Assert.False(approval.Completion.IsCompleted);

        Assert.Equal(AnswerResult.Answered, broker.Answer(approval.Id, approve: true, "bob", "ok once", ApprovalScope.Call, ApprovalChannel.Admin));
        ApprovalOutcome outcome = await approval.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ApprovalStatus.Approved, outcome.Status);
        Assert.Equal("bob", outcome.By);
        Assert.Equal("ok once", outcome.Note);
        Assert.Equal(ApprovalChannel.Admin, outcome.Via);
        Assert.Empty(broker.List());

        Assert.Equal(AnswerResult.AlreadyAnswered, broker.Answer(approval.Id, approve: false, "carol", null, ApprovalScope.Call, ApprovalChannel.Admin));
        Assert.Equal(AnswerResult.NotFound, broker.Answer("apr_00000000000000000000000000000000", approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin));
    }

    [Fact]
    public async Task NoAnswer_TimesOutOnTheInjectedClock()
    {
        using var broker = new ApprovalBroker(_time);
        PendingApproval approval = broker.Register(Request(timeout: TimeSpan.FromSeconds(30)))!;
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.False(approval.Completion.IsCompleted);
        _time.Advance(TimeSpan.FromSeconds(1));
        ApprovalOutcome outcome = await approval.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ApprovalStatus.TimedOut, outcome.Status);
        Assert.Equal(ApprovalChannel.Timeout, outcome.Via);
        Assert.Equal(0, broker.Count);
        Assert.Contains("timed out", ApprovalMessages.RefusalReason(approval, outcome));
        Assert.Contains("30 s", ApprovalMessages.RefusalReason(approval, outcome));
    }

    [Fact]
    public async Task AnsweredCall_NoLongerTimesOut()
    {
        using var broker = new ApprovalBroker(_time);
        PendingApproval approval = broker.Register(Request(timeout: TimeSpan.FromSeconds(30)))!;
        broker.Answer(approval.Id, approve: false, "bob", "no", ApprovalScope.Call, ApprovalChannel.Admin);
        _time.Advance(TimeSpan.FromMinutes(5));
        ApprovalOutcome outcome = await approval.Completion;
        Assert.Equal(ApprovalStatus.Denied, outcome.Status);
        Assert.Equal("deletes need a human; approval denied by bob: no", ApprovalMessages.RefusalReason(approval, outcome));
    }

    [Fact]
    public void SessionScope_CoversTheSameToolAndCanonicalArguments_InTheSameSessionOnly()
    {
        using var broker = new ApprovalBroker(_time);
        PendingApproval approval = broker.Register(Request(arguments: """{"name":"prod","force":true}"""))!;
        broker.Answer(approval.Id, approve: true, "bob", null, ApprovalScope.Session, ApprovalChannel.Admin);

        // Key order and spacing do not matter (canonical JSON); values, tool and session do.
        Assert.True(broker.TryUseStanding(Request(arguments: """{ "force": true, "name": "prod" }""")));
        Assert.False(broker.TryUseStanding(Request(arguments: """{"name":"staging","force":true}""")));
        Assert.False(broker.TryUseStanding(Request(tool: "delete_nodegroup", arguments: """{"name":"prod","force":true}""")));
        Assert.False(broker.TryUseStanding(Request(session: "s2", arguments: """{"name":"prod","force":true}""")));

        broker.EndSession("s1");
        Assert.False(broker.TryUseStanding(Request(arguments: """{"name":"prod","force":true}""")));
    }

    [Fact]
    public async Task SessionScope_NeverCoversAnotherGrant_NorSessionlessCalls()
    {
        using var broker = new ApprovalBroker(_time);
        broker.Answer(broker.Register(Request())!.Id, approve: true, "bob", null, ApprovalScope.Session, ApprovalChannel.Admin);
        ApprovalRequest otherGrant = ApprovalBroker.Prepare(RequestId.FromInteger(2), "mallory", "s1", "delete_cluster"u8, """{"name":"prod"}"""u8, "/tools/delete_cluster/action", "r", TimeSpan.FromMinutes(1));
        Assert.False(broker.TryUseStanding(otherGrant));

        // Without a session (sessionless HTTP) there is nothing to scope to: the answer approves that call only.
        PendingApproval sessionless = broker.Register(Request(session: ""))!;
        broker.Answer(sessionless.Id, approve: true, "bob", null, ApprovalScope.Session, ApprovalChannel.Admin);
        Assert.Equal(ApprovalScope.Call, (await sessionless.Completion).Scope);
        Assert.False(broker.TryUseStanding(Request(session: "")));
    }

    [Fact]
    public void CallScope_AndDenials_LeaveNoStandingApproval()
    {
        using var broker = new ApprovalBroker(_time);
        broker.Answer(broker.Register(Request(id: 1))!.Id, approve: true, "bob", null, ApprovalScope.Call, ApprovalChannel.Admin);
        broker.Answer(broker.Register(Request(id: 2))!.Id, approve: false, "bob", null, ApprovalScope.Session, ApprovalChannel.Admin);
        Assert.False(broker.TryUseStanding(Request()));
    }

    [Fact]
    public async Task EndSession_WithdrawsOnlyThatSessionsCalls()
    {
        using var broker = new ApprovalBroker(_time);
        PendingApproval mine = broker.Register(Request(session: "s1"))!;
        PendingApproval other = broker.Register(Request(session: "s2"))!;
        broker.EndSession("s1");
        Assert.Equal(ApprovalStatus.Withdrawn, (await mine.Completion).Status);
        Assert.False(other.Completion.IsCompleted);
        Assert.Equal(other.Id, Assert.Single(broker.List()).Id);
    }

    [Fact]
    public void TryWithdrawRequest_MatchesSessionGrantAndRequestId()
    {
        using var broker = new ApprovalBroker(_time);
        broker.Register(Request(id: 7));
        Assert.False(broker.TryWithdrawRequest("s1", "alice", RequestId.FromInteger(8)));
        Assert.False(broker.TryWithdrawRequest("s2", "alice", RequestId.FromInteger(7)));
        Assert.False(broker.TryWithdrawRequest("s1", "mallory", RequestId.FromInteger(7)));
        Assert.True(broker.TryWithdrawRequest("s1", "alice", RequestId.FromInteger(7)));
        Assert.Equal(0, broker.Count);
    }

    [Fact]
    public void Prepare_RendersCanonicalArguments_AndTruncatesLongOnes()
    {
        ApprovalRequest small = Request(arguments: """{"b":2, "a":"x"}""");
        Assert.Equal("""{"a":"x","b":2}""", small.Arguments);
        Assert.False(small.ArgumentsTruncated);
        Assert.Equal(Request(arguments: """{"a":"x","b":2}""").ArgumentsSha256, small.ArgumentsSha256);

        string longValue = new('é', 3000);
        ApprovalRequest large = Request(arguments: "{\"text\":\"" + longValue + "\"}");
        Assert.True(large.ArgumentsTruncated);
        Assert.EndsWith("…", large.Arguments);
        Assert.True(Encoding.UTF8.GetByteCount(large.Arguments) <= ApprovalBroker.MaxArgumentsRendering + Encoding.UTF8.GetByteCount("…"));
        Assert.DoesNotContain('\uFFFD', large.Arguments); // never cut inside a character
    }

    [Fact]
    public void TooManyPending_AreRefused()
    {
        using var broker = new ApprovalBroker(_time);
        for (int i = 0; i < ApprovalBroker.MaxPending; i++)
        {
            Assert.NotNull(broker.Register(Request(id: i)));
        }

        Assert.Null(broker.Register(Request(id: -1)));
    }

    [Fact]
    public async Task EveryRequestAndAnswer_IsAudited_AndCounted()
    {
        string path = Path.Combine(_directory, "audit.jsonl");
        AuditLog audit = AuditLog.Open(path, new AuditLogOptions { GatewayName = "gw", Time = _time });
        var metrics = new GatewayMetrics();
        using (var broker = new ApprovalBroker(_time, audit, metrics))
        {
            PendingApproval first = broker.Register(Request(id: 1))!;
            PendingApproval second = broker.Register(Request(id: 2, timeout: TimeSpan.FromSeconds(10)))!;
            var prometheus = new StringWriter();
            metrics.WritePrometheus(prometheus);
            Assert.Contains("policycompiler_approvals_pending 2\n", prometheus.ToString());

            broker.Answer(first.Id, approve: true, "bob", "looks right", ApprovalScope.Session, ApprovalChannel.Elicitation);
            _time.Advance(TimeSpan.FromSeconds(10));
            await second.Completion;
            Assert.Equal(1, metrics.ApprovalOutcomes("approved"));
            Assert.Equal(1, metrics.ApprovalOutcomes("timed_out"));
            prometheus = new StringWriter();
            metrics.WritePrometheus(prometheus);
            Assert.Contains("policycompiler_approvals_pending 0\n", prometheus.ToString());
            Assert.Contains("policycompiler_approvals_total{outcome=\"approved\"} 1\n", prometheus.ToString());
        }

        await audit.DisposeAsync();
        JsonElement[] lines = File.ReadAllLines(path).Select(line => JsonDocument.Parse(line).RootElement).ToArray();
        Assert.Equal(4, lines.Length);
        Assert.All(lines, line => Assert.Equal("approval", line.GetProperty("event").GetString()));
        Assert.Equal("requested", lines[0].GetProperty("status").GetString());
        Assert.Equal("delete_cluster", lines[0].GetProperty("tool").GetString());
        Assert.Equal("deletes need a human", lines[0].GetProperty("reason").GetString());
        Assert.Equal(64, lines[0].GetProperty("argumentsSha256").GetString()!.Length);
        Assert.True(lines[0].TryGetProperty("expires", out _));
        JsonElement approved = lines.Single(line => line.GetProperty("status").GetString() == "approved");
        Assert.Equal("bob", approved.GetProperty("by").GetString());
        Assert.Equal("looks right", approved.GetProperty("note").GetString());
        Assert.Equal("elicitation", approved.GetProperty("via").GetString());
        Assert.Equal("session", approved.GetProperty("scope").GetString());
        Assert.Equal(lines[0].GetProperty("approval").GetString(), approved.GetProperty("approval").GetString());
        JsonElement timedOut = lines.Single(line => line.GetProperty("status").GetString() == "timed_out");
        Assert.Equal("timeout", timedOut.GetProperty("via").GetString());
        Assert.Equal(2, timedOut.GetProperty("id").GetInt32());
    }
}
