using System.Text;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Policy.Tests.Testing;

public class PolicyCaseRunnerTests
{
    private const string Policy = """
        { "version": "1", "tools": {
            "Push": { "limits": [ { "counter": "pushes", "window": 10, "max": 2 } ] },
            "Deploy": { "action": "approve", "reason": "needs a human", "limits": [ { "counter": "deploys", "window": "hour", "max": 1 } ] },
            "Scale": { "rules": [ { "when": { "args.n": { "gt": 5 } }, "action": "deny", "reason": "too many" } ] } } }
        """;

    private static PolicyDocument Document() =>
        PolicyParser.Parse("p.json", Encoding.UTF8.GetBytes(Policy)).Policy ?? throw new InvalidOperationException("policy invalid");

    private static PolicyTestReport Run(string cases)
    {
        var document = Document();
        var file = PolicyCaseFile.Parse("p.cases.json", Encoding.UTF8.GetBytes(cases));
        return PolicyCaseRunner.Run(file, options => new PolicyInterpreter(document, options));
    }

    [Fact]
    public void Passing_cases_cover_single_calls_sequences_approvals_and_rollbacks()
    {
        var report = Run("""
            { "defaults": { "grant": "a" }, "cases": [
              { "name": "single", "tool": "Scale", "args": { "n": 1 }, "listed": true, "expect": { "decision": "allow", "rule": "/tools/Scale" } },
              { "name": "fail closed", "tool": "Scale", "args_raw": "{\"n\":1,\"n\":9}", "expect": { "decision": "deny", "reason": "too many" } },
              { "name": "limit", "tool": "Push", "calls": [
                  { "at": 0, "repeat": 2, "every": 3, "expect": "allow" },
                  { "at": 9, "expect": { "decision": "rate_limited", "counter": "pushes", "retry_after": 1 } },
                  { "at": 10, "expect": "allow" },
                  { "at": 10, "grant": "b", "expect": "allow" } ] },
              { "name": "approval", "tool": "Deploy", "calls": [
                  { "expect": { "decision": "approval_required", "rule": "/tools/Deploy/action", "reason": "needs a human" } },
                  { "approved": true, "rollback": true, "expect": "allow" },
                  { "approved": true, "expect": "allow" },
                  { "approved": true, "expect": { "decision": "rate_limited", "retry_after": 3600 } } ] },
              { "name": "wrong expectation", "start": "2026-03-01T10:00:00Z", "tool": "Push", "calls": [ { "repeat": 3, "expect": { "decision": "allow" } } ] }
            ] }
            """);
        Assert.Equal(4, report.Passed);
        Assert.Equal(1, report.Failed);
        Assert.Equal("wrong expectation", Assert.Single(report.Results, r => !r.Passed).Case.Name);
        Assert.Equal("4 passed, 1 failed", report.Summary);
    }

    [Fact]
    public void A_failure_names_the_call_the_repetition_and_both_decisions()
    {
        var report = Run("""
            { "cases": [ { "name": "too optimistic", "tool": "Push", "calls": [ { "repeat": 3, "expect": "allow" } ] } ] }
            """);
        var failure = Assert.Single(report.Results).Failure;
        Assert.Equal(
            "/cases/0/calls/0 (repetition 3 of 3): Push: decision allow expected; got rate_limited (/tools/Push/limits/0): \"rate limit 'pushes' allows 2 per 10 seconds per grant\", counter 'pushes', retry after 10s",
            failure);
    }

    [Theory]
    [InlineData("rule", "\"/tools/Scale/rules/0\"", "rule /tools/Scale/rules/0 expected")]
    [InlineData("reason", "\"other\"", "reason \"other\" expected")]
    [InlineData("counter", "\"x\"", "counter 'x' expected")]
    [InlineData("retry_after", "\"never\"", "retry after never expected")]
    public void Each_expected_part_is_checked(string field, string value, string message)
    {
        var report = Run($$"""
            { "cases": [ { "tool": "Scale", "expect": { "decision": "allow", "{{field}}": {{value}} } } ] }
            """);
        Assert.StartsWith("/cases/0: Scale: " + message, Assert.Single(report.Results).Failure);
    }

    [Fact]
    public void Listed_expectations_are_checked()
    {
        var report = Run("""{ "cases": [ { "tool": "Unknown", "listed": true } ] }""");
        Assert.Equal("/cases/0: Unknown: expected in tools/list, but it is not listed", Assert.Single(report.Results).Failure);
    }

    [Theory]
    [InlineData("""{ "cases": [ { "tool": "x", "expct": "allow" } ] }""", "/cases/0: unknown field 'expct'")]
    [InlineData("""{ "cases": [ { "tool": "x", "expect": "allowed" } ] }""", "/cases/0/expect: unknown decision 'allowed'")]
    [InlineData("""{ "cases": [ { "expect": "allow" } ] }""", "/cases/0: a case needs 'tool'")]
    [InlineData("""{ "cases": [ { "tool": "x", "calls": [ { "at": 5 }, { "at": 4 } ] } ] }""", "/cases/0/calls/1/at: times must not go backwards")]
    [InlineData("""{ "cases": [ { "tool": "x", "expect": "allow", "calls": [ { } ] } ] }""", "/cases/0/expect: belongs in each of 'calls'")]
    [InlineData("""{ "cases": [ { "tool": "x", "args": {}, "args_raw": "{}" } ] }""", "/cases/0: give 'args' or 'args_raw', not both")]
    [InlineData("""{ "cases": [ { "tool": "x", "expect": { "decision": "rate_limited", "retry_after": "soon" } } ] }""", "/cases/0/expect/retry_after: must be a number")]
    [InlineData("""{ "cases": {} }""", "'cases' must be an array")]
    [InlineData("""{ "cases": [ """, "not valid JSON")]
    public void Mistakes_in_a_cases_file_are_reported_with_their_place(string json, string message)
    {
        var e = Assert.Throws<PolicyCaseFormatException>(() => PolicyCaseFile.Parse("p.cases.json", Encoding.UTF8.GetBytes(json)));
        Assert.StartsWith("p.cases.json: ", e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Every_case_starts_from_fresh_counters()
    {
        var report = Run("""
            { "cases": [
              { "tool": "Push", "calls": [ { "repeat": 2, "expect": "allow" } ] },
              { "tool": "Push", "calls": [ { "repeat": 2, "expect": "allow" } ] } ] }
            """);
        Assert.Equal(2, report.Passed);
    }

    [Fact]
    public void The_runner_works_with_any_evaluator()
    {
        // An evaluator that allows everything: the runner must see its decisions, not the interpreter's.
        var file = PolicyCaseFile.Parse("p.cases.json", """
            { "cases": [ { "tool": "Scale", "args": { "n": 9 }, "expect": "deny" }, { "tool": "Scale", "expect": "allow" } ] }
            """u8);
        var report = PolicyCaseRunner.Run(file, _ => new AllowAll());
        Assert.Equal("1 passed, 1 failed", report.Summary);
    }

    private sealed class AllowAll : IPolicyEvaluator
    {
        public PolicyInfo Policy { get; } = new("allow", "", PolicyMode.Enforce, "");
        public Decision Evaluate(in ToolCall call) => Decision.Allow("/default");
        public Decision ReserveLimits(in ToolCall call) => Decision.Allow("/default");
        public bool IsListed(ReadOnlySpan<byte> toolNameUtf8) => true;
    }
}
