extern alias generator;

using System.Collections.Immutable;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PolicyCompiler.Generators.Tests.TestHelpers;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Generators.Tests;

/// <summary>The generator as the compiler runs it: policy files in, evaluator or located diagnostics out.</summary>
public class GeneratorTests
{
    private const string Seed = """
        { "version": "1", "default": "deny",
          "tools": { "CreateCodeConnection": { "limits": [
            { "counter": "createcodeconnection_rate", "window": "minute", "max": 30, "scope": "grant" } ] } } }
        """;

    [Fact]
    public void Valid_Seed_EmitsEvaluatorAndEntryPointThatCompile()
    {
        var (result, output, diagnostics) = GeneratorHarness.Run("/p/seed.json", Seed);

        Assert.Empty(diagnostics);
        Assert.Equal(["SeedPolicyEvaluator.g.cs"], result.GeneratedTrees.Select(t => Path.GetFileName(t.FilePath)));
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
        string text = result.GeneratedTrees[0].ToString();
        Assert.Contains("public static class CompiledPolicy", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_Seed_CompiledEvaluatorDecides()
    {
        var (_, output, _) = GeneratorHarness.Run("/p/seed.json", Seed);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
            var create = assembly.GetType("PolicyCompiler.Generated.CompiledPolicy")!.GetMethod("Create")!;
            var evaluator = (IPolicyEvaluator)create.Invoke(null, [new PolicyEvaluatorOptions { Time = clock, Counters = new MemoryCounterStore() }])!;

            Assert.Equal("seed", evaluator.Policy.Name);
            Assert.Equal(Seed, evaluator.Policy.SourceText);
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Seed))), evaluator.Policy.Sha256);

            for (int i = 0; i < 30; i++)
            {
                var allowed = evaluator.Evaluate(new ToolCall("CreateCodeConnection"u8, "{}"u8, "agent", "s1"));
                Assert.Equal(DecisionKind.Allow, allowed.Kind);
                Assert.Equal("/tools/CreateCodeConnection", allowed.Rule);
                allowed.Reservation.Commit();
                clock.Advance(TimeSpan.FromSeconds(1));
            }

            var limited = evaluator.Evaluate(new ToolCall("CreateCodeConnection"u8, "{}"u8, "agent", "s1"));
            Assert.Equal(DecisionKind.RateLimited, limited.Kind);
            Assert.Equal("/tools/CreateCodeConnection/limits/0", limited.Rule);
            Assert.Equal("createcodeconnection_rate", limited.Counter);
            Assert.Equal(TimeSpan.FromSeconds(30), limited.RetryAfter);

            // Another grant has its own counter; another tool is denied by default.
            Assert.Equal(DecisionKind.Allow, evaluator.Evaluate(new ToolCall("CreateCodeConnection"u8, "{}"u8, "other", "s2")).Kind);
            var denied = evaluator.Evaluate(new ToolCall("DeleteCluster"u8, "{}"u8, "agent", "s1"));
            Assert.Equal(DecisionKind.Deny, denied.Kind);
            Assert.Equal("/default", denied.Rule);
            Assert.True(evaluator.IsListed("CreateCodeConnection"u8));
            Assert.False(evaluator.IsListed("DeleteCluster"u8));
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void Valid_Pins_AreExposedLikeTheInterpreterExposesThem()
    {
        const string pinned = """
            { "version": "1", "tools": {
              "z_last": { "pin": "sha256:1111111111111111111111111111111111111111111111111111111111111111" },
              "a \"quoted\" name": { "pin": "sha256:2222222222222222222222222222222222222222222222222222222222222222", "action": "approve" },
              "unpinned": {},
              "get_*": {} } }
            """;
        var (result, output, diagnostics) = GeneratorHarness.Run("/p/pinned.json", pinned);
        // The quoted name exercises the literal escaping; it is only unusual (PC0103), not wrong.
        Assert.Equal(["PC0103"], diagnostics.Select(d => d.Id));
        // Only a pinned policy gets the initializer, so every other policy's output is unchanged.
        Assert.Contains("Pins = new global::System.Collections.Generic.Dictionary<string, string>", result.GeneratedTrees[0].ToString(), StringComparison.Ordinal);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var info = (PolicyInfo)assembly.GetType("PolicyCompiler.Generated.CompiledPolicy")!.GetProperty("Info")!.GetValue(null)!;
            var parsed = PolicyCompiler.Policy.Language.PolicyParser.Parse("/p/pinned.json", Encoding.UTF8.GetBytes(pinned));
            var interpreted = new PolicyCompiler.Policy.Interpretation.PolicyInterpreter(parsed.Policy!).Policy;

            Assert.Equal(2, info.Pins.Count);
            Assert.Equal("sha256:1111111111111111111111111111111111111111111111111111111111111111", info.Pins["z_last"]);
            Assert.Equal(interpreted.Pins.OrderBy(p => p.Key, StringComparer.Ordinal), info.Pins.OrderBy(p => p.Key, StringComparer.Ordinal));
        }
        finally
        {
            context.Unload();
        }

        var (unpinned, _, _) = GeneratorHarness.Run("/p/seed.json", Seed);
        Assert.DoesNotContain("Pins =", unpinned.GeneratedTrees[0].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Diagnostic_UnknownField_IsLocatedAtTheKeyInTheJsonFile()
    {
        const string json = "{\n  \"version\": \"1\",\n  \"tools\": {\n    \"X\": { \"acton\": \"deny\" }\n  }\n}\n";
        var (result, _, diagnostics) = GeneratorHarness.Run("/p/typo.json", json);

        Diagnostic diagnostic = Assert.Single(diagnostics);
        Assert.Equal("PC0004", diagnostic.Id);
        Assert.Equal(DiagnosticSeverity.Error, diagnostic.Severity);
        Assert.Contains(WellKnownDiagnosticTags.NotConfigurable, diagnostic.Descriptor.CustomTags);
        FileLinePositionSpan span = diagnostic.Location.GetLineSpan();
        Assert.Equal("/p/typo.json", span.Path);
        Assert.Equal(new LinePosition(3, 11), span.StartLinePosition); // line 4, column 12 (1-based)
        Assert.Equal("\"acton\"", json.Substring(diagnostic.Location.SourceSpan.Start, diagnostic.Location.SourceSpan.Length));
        Assert.Empty(result.GeneratedTrees);
    }

    [Fact]
    public void Diagnostic_InvalidJson_FailsWithoutOutput()
    {
        var (result, _, diagnostics) = GeneratorHarness.Run("/p/broken.json", "{ \"version\": \"1\", }");

        Diagnostic diagnostic = Assert.Single(diagnostics);
        Assert.Equal("PC0001", diagnostic.Id);
        Assert.Equal(0, diagnostic.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Empty(result.GeneratedTrees);
    }

    [Fact]
    public void Diagnostic_TwoPolicies_ReportsPC0901AtTheSecondAndEmitsNothing()
    {
        GeneratorDriver driver = GeneratorHarness.CreateDriver([
            new GeneratorHarness.InMemoryAdditionalText("/p/b.json", Seed),
            new GeneratorHarness.InMemoryAdditionalText("/p/a.json", Seed),
        ]);
        driver = driver.RunGeneratorsAndUpdateCompilation(InMemoryCompiler.CreateCompilation([]), out _, out ImmutableArray<Diagnostic> diagnostics);

        Diagnostic diagnostic = Assert.Single(diagnostics);
        Assert.Equal("PC0901", diagnostic.Id);
        Assert.Equal("/p/b.json", diagnostic.Location.GetLineSpan().Path);
        Assert.Empty(driver.GetRunResult().GeneratedTrees);
    }

    [Fact]
    public void Valid_MoreEntriesThanAByteCanRoute_CompilesAndDecides()
    {
        // 300 entries: the route enum no longer fits in a byte, and the names are selected by per-length
        // methods (both found by the 500-tool benchmark policy).
        var tools = new StringBuilder();
        for (int i = 0; i < 300; i++)
        {
            tools.Append(i == 0 ? "" : ",").Append("\"tool_").Append(i.ToString("000", System.Globalization.CultureInfo.InvariantCulture)).Append("\": {}");
        }

        string policy = "{ \"version\": \"1\", \"default\": \"deny\", \"tools\": { " + tools + " } }";
        var (_, output, diagnostics) = GeneratorHarness.Run("/p/wide.json", policy);
        Assert.Empty(diagnostics);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var create = assembly.GetType("PolicyCompiler.Generated.CompiledPolicy")!.GetMethod("Create")!;
            var evaluator = (IPolicyEvaluator)create.Invoke(null, [new PolicyEvaluatorOptions()])!;
            // Past 32 names the selector dispatches per length and byte: every name must still find its entry.
            for (int i = 0; i < 300; i++)
            {
                string name = "tool_" + i.ToString("000", System.Globalization.CultureInfo.InvariantCulture);
                var decision = evaluator.Evaluate(new ToolCall(Encoding.UTF8.GetBytes(name), "{}"u8, "agent", "s1"));
                Assert.Equal(DecisionKind.Allow, decision.Kind);
                Assert.Equal("/tools/" + name, decision.Rule);
            }

            // Same length, unknown byte at the dispatch position, and a near miss in a known group.
            Assert.Equal("/default", evaluator.Evaluate(new ToolCall("tool_300"u8, "{}"u8, "agent", "s1")).Rule);
            Assert.Equal("/default", evaluator.Evaluate(new ToolCall("tool_2x9"u8, "{}"u8, "agent", "s1")).Rule);
            Assert.Equal("/default", evaluator.Evaluate(new ToolCall("tool-299"u8, "{}"u8, "agent", "s1")).Rule);
            Assert.Equal("/default", evaluator.Evaluate(new ToolCall("tool_29"u8, "{}"u8, "agent", "s1")).Rule);
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void Valid_UnmarkedAdditionalFile_IsNotRead()
    {
        GeneratorDriver driver = GeneratorHarness.CreateDriver(
            [new GeneratorHarness.InMemoryAdditionalText("/p/other.json", "not json at all")], policyPaths: []);
        driver = driver.RunGeneratorsAndUpdateCompilation(InMemoryCompiler.CreateCompilation([]), out _, out ImmutableArray<Diagnostic> diagnostics);

        Assert.Empty(diagnostics);
        Assert.Empty(driver.GetRunResult().GeneratedTrees);
    }

    [Fact]
    public void Diagnostic_Warning_IsReportedAndTheEvaluatorStillEmitted()
    {
        // A rule after an unconditional one can never be reached: a warning, not an error.
        const string json = """
            { "version": "1", "tools": { "X": { "rules": [
              { "action": "deny", "reason": "always" },
              { "action": "allow" } ] } } }
            """;
        var (result, _, diagnostics) = GeneratorHarness.Run("/p/warn.json", json);

        Assert.NotEmpty(diagnostics);
        Assert.True(diagnostics.All(d => d.Severity == DiagnosticSeverity.Warning), string.Join("\n", diagnostics));
        Assert.Single(result.GeneratedTrees);
    }

    [Fact]
    public void Valid_HostileText_CompilesAndKeepsItsMeaning()
    {
        const string injection = "\\\"); System.Environment.Exit(1); //";
        string json = $$"""
            { "version": "1", "name": "hostile", "default_reason": "no \u00e9 */ \\n \"quoted\" {{injection}}",
              "tools": {
                "{{injection}}": { "action": "deny", "reason": "{{injection}} */ /* \u4e2d \ud83d\ude00 \\\\ \n" },
                "*/\\\\*": { "rules": [ { "when": { "args.q": { "eq": "{{injection}}" } }, "action": "approve", "reason": "\u2028" } ] }
              } }
            """.Replace("\n \"", "\\n \"");
        var (result, output, diagnostics) = GeneratorHarness.Run("/p/hostile.json", json);
        Assert.True(!diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error), string.Join("\n", diagnostics));
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var policy = PolicyCompiler.Policy.Language.PolicyParser.Parse("/p/hostile.json", Encoding.UTF8.GetBytes(json)).Policy!;
            var evaluator = InMemoryCompiler.Create(assembly, "HostilePolicyEvaluator", new PolicyEvaluatorOptions());
            string toolName = "\"); System.Environment.Exit(1); //";
            var tool = policy.Tools.Single(t => t.Name == toolName);

            var denied = evaluator.Evaluate(new ToolCall(Encoding.UTF8.GetBytes(toolName), "{}"u8, "g", "s"));
            Assert.Equal(DecisionKind.Deny, denied.Kind);
            Assert.Equal(tool.Reason, denied.Reason);
            Assert.Equal(tool.Pointer + "/action", denied.Rule);

            var approve = evaluator.Evaluate(new ToolCall("*/\\\\x"u8, Encoding.UTF8.GetBytes("{\"q\":\"\\\"); System.Environment.Exit(1); //\"}"), "g", "s"));
            Assert.Equal(DecisionKind.ApprovalRequired, approve.Kind);
            Assert.Equal("\u2028", approve.Reason);

            var fallback = evaluator.Evaluate(new ToolCall("other"u8, "{}"u8, "g", "s"));
            Assert.Equal(policy.DefaultReason, fallback.Reason);
            Assert.Equal(json, evaluator.Policy.SourceText);
        }
        finally
        {
            context.Unload();
        }
    }
}

/// <summary>Disagreements the equivalence test found once, kept as fixed examples.</summary>
public class EquivalenceRegressionTests
{
    // `in []` / `not_in []` on a value behind a duplicated key: Unknown (fail closed), so a deny rule
    // fires and an allow rule does not, on both evaluators. The interpreter answered False / True.
    [Theory]
    [InlineData("in", "deny", DecisionKind.Deny)]
    [InlineData("not_in", "allow", DecisionKind.Deny)]
    [InlineData("in", "allow", DecisionKind.Deny)]
    public void Valid_EmptyList_AmbiguousValue_IsUnknownOnBothSides(string op, string action, DecisionKind expected)
    {
        string json = $$"""{ "version": "1", "tools": { "A": { "action": "deny", "rules": [ { "when": { "args.a": { "{{op}}": [] } }, "action": "{{action}}", "reason": "r" } ] } } }""";
        var policy = PolicyCompiler.Policy.Language.PolicyParser.Parse("p.json", Encoding.UTF8.GetBytes(json)).Policy!;
        var (_, output, _) = GeneratorHarness.Run("/p/p.json", json);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var compiled = InMemoryCompiler.Create(assembly, "PPolicyEvaluator", new PolicyEvaluatorOptions());
            var interpreter = new PolicyCompiler.Policy.Interpretation.PolicyInterpreter(policy);
            var call = new ToolCall("A"u8, """{"a":1,"a":2}"""u8, "g", "s");
            Decision fromInterpreter = interpreter.Evaluate(call), fromCompiled = compiled.Evaluate(call);
            Assert.Equal(expected, fromInterpreter.Kind);
            Assert.Equal(fromInterpreter.Kind, fromCompiled.Kind);
            Assert.Equal(fromInterpreter.Rule, fromCompiled.Rule);
        }
        finally
        {
            context.Unload();
        }
    }
}
