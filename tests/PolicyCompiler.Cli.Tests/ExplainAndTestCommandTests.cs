using PolicyCompiler.Cli;

namespace PolicyCompiler.Cli.Tests;

public sealed class ExplainAndTestCommandTests() : CliTest("policyc-explain-")
{
    private const string Policy = """
        { "version": "1", "tools": {
            "*": { "rules": [ { "when": { "args.namespace": { "eq": "kube-system" } }, "action": "deny", "reason": "kube-system is off limits" } ] },
            "Delete*": { "action": "approve", "reason": "deletes need a human" },
            "Scale": { "limits": [ { "counter": "scale_rate", "window": "minute", "max": 2 } ] } } }
        """;

    [Fact]
    public void Explain_prints_decision_rule_reason_and_trace()
    {
        string policy = Write("p.json", Policy);
        var (exit, output, error) = Invoke("explain", policy, "--tool", "Scale", "--args", """{"namespace":"kube-system"}""", "--grant", "g");
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        string[] lines = output.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("decision: deny", lines[0]);
        Assert.Equal("rule:     /tools/*/rules/0", lines[1]);
        Assert.Equal("reason:   kube-system is off limits", lines[2]);
        Assert.Contains("trace:", lines);
        Assert.Contains(lines, l => l.Contains("/tools/Scale: entry names the tool exactly"));
        Assert.Contains(lines, l => l.Contains("args.namespace eq \"kube-system\": value \"kube-system\" → true"));
        Assert.Contains(lines, l => l.Contains("/tools/*/rules/0: deny rule: condition true → fires"));
    }

    [Fact]
    public void Explain_shows_pattern_selection_and_approval()
    {
        string policy = Write("p.json", Policy);
        var (exit, output, _) = Invoke("explain", policy, "--tool", "DeleteCluster");
        Assert.Equal(0, exit);
        Assert.StartsWith("decision: approval_required\nrule:     /tools/Delete*/action\nreason:   deletes need a human\n", output.ReplaceLineEndings("\n"));
        // '*' is a layer, never a competing pattern.
        Assert.Contains("/tools/Delete*: pattern 'Delete*' matches the tool", output);
        Assert.Contains("/tools/*: the '*' layer adds its rules (first) and limits", output);
    }

    [Fact]
    public void Explain_a_tool_no_entry_matches_runs_the_layer_then_the_default()
    {
        string policy = Write("p.json", Policy);
        var (exit, output, _) = Invoke("explain", policy, "--tool", "ListPods", "--args", """{"namespace":"default"}""");
        Assert.Equal(0, exit);
        Assert.StartsWith("decision: deny\nrule:     /default\nreason:   tool is not allowed by this policy\n", output.ReplaceLineEndings("\n"));
        Assert.Contains("no entry matches the tool", output);
        Assert.Contains("/tools/*/rules/0: deny rule: condition false → does not fire", output);
        Assert.Contains("/default: no rule fired; default is deny", output);
    }

    [Fact]
    public void Explain_an_allowed_call_shows_its_limits()
    {
        string policy = Write("p.json", Policy);
        var (exit, output, _) = Invoke("explain", policy, "--tool", "Scale", "--args", "{}");
        Assert.Equal(0, exit);
        Assert.StartsWith("decision: allow\nrule:     /tools/Scale\n", output.ReplaceLineEndings("\n"));
        Assert.Contains("/tools/Scale/limits/0: counter 'scale_rate' (scope 'default') adds 1 of max 2 per minute → admitted", output);
    }

    [Fact]
    public void Explain_refuses_invalid_arguments_and_invalid_policies()
    {
        string policy = Write("p.json", Policy);
        var (exit, _, error) = Invoke("explain", policy, "--tool", "Scale", "--args", "{nope");
        Assert.Equal(2, exit);
        Assert.StartsWith("--args: not valid JSON", error);

        string broken = Write("broken.json", """{ "version": "1", "tools": { "X": { "actoin": "deny" } } }""");
        (exit, _, error) = Invoke("explain", broken, "--tool", "X");
        Assert.Equal(2, exit);
        Assert.Contains("error PC", error);
    }

    [Fact]
    public void Explain_needs_a_tool()
    {
        string policy = Write("p.json", Policy);
        var (exit, _, error) = Invoke("explain", policy);
        Assert.NotEqual(0, exit);
        Assert.Contains("--tool", error);
    }

    [Fact]
    public void Test_passes_with_the_default_cases_file_next_to_the_policy()
    {
        string policy = Write("p.json", Policy);
        Write("p.cases.json", """
            { "cases": [
              { "name": "kube-system", "tool": "Scale", "args": { "namespace": "kube-system" }, "expect": { "decision": "deny", "rule": "/tools/*/rules/0" } },
              { "name": "limit", "tool": "Scale", "calls": [ { "repeat": 2, "expect": "allow" }, { "at": 30, "expect": { "decision": "rate_limited", "retry_after": 30 } } ] } ] }
            """);
        var (exit, output, error) = Invoke("test", policy);
        Assert.Equal("", error);
        Assert.Equal(0, exit);
        Assert.Equal("2 passed, 0 failed", output.Trim());
    }

    [Fact]
    public void Test_prints_each_failure_and_exits_1()
    {
        string policy = Write("p.json", Policy);
        string cases = Write("other.json", """
            { "cases": [
              { "name": "right", "tool": "DeleteNodegroup", "expect": "approval_required" },
              { "name": "wrong", "tool": "DeleteNodegroup", "expect": "allow" },
              { "name": "also wrong", "tool": "Scale", "expect": { "decision": "allow", "rule": "/default" } } ] }
            """);
        var (exit, output, _) = Invoke("test", policy, "--cases", cases);
        Assert.Equal(1, exit);
        string[] lines = output.ReplaceLineEndings("\n").Trim().Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.Equal("FAIL wrong: /cases/1: DeleteNodegroup: decision allow expected; got approval_required (/tools/Delete*/action): \"deletes need a human\"", lines[0]);
        Assert.Equal("FAIL also wrong: /cases/2: Scale: rule /default expected; got allow (/tools/Scale)", lines[1]);
        Assert.Equal("1 passed, 2 failed", lines[2]);
    }

    [Fact]
    public void Test_reports_a_missing_or_malformed_cases_file()
    {
        string policy = Write("p.json", Policy);
        var (exit, _, error) = Invoke("test", policy);
        Assert.Equal(2, exit);
        Assert.Contains("p.cases.json", error);

        Write("p.cases.json", """{ "cases": [ { "tool": "x", "expct": "allow" } ] }""");
        (exit, _, error) = Invoke("test", policy);
        Assert.Equal(2, exit);
        Assert.Contains("unknown field 'expct'", error);
    }

    [Fact]
    public void Test_runs_every_shipped_policy_green()
    {
        string directory = Path.Combine(AppContext.BaseDirectory, "policies");
        foreach (var file in Directory.GetFiles(directory, "*.json"))
        {
            if (file.EndsWith(".cases.json", StringComparison.Ordinal) || file.EndsWith(".schema.json", StringComparison.Ordinal)) continue;
            var (exit, output, error) = Invoke("test", file);
            Assert.True(exit == 0, $"{file}: {output}{error}");
            Assert.EndsWith(" passed, 0 failed", output.Trim());
        }
    }
}
