using System.Text;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using PolicyCompiler.Generators.Tests.TestHelpers;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Generators.Tests;

/// <summary>
/// What a gateway build sees: the policy hash it embeds, warnings that must not fail it, and the
/// '*' layer compiled as the language defines it.
/// </summary>
public class PolicyBuildTests
{
    private static string PropsPath => Path.Combine(Repo.Root, "generators", "PolicyCompiler.Generators", "build", "PolicyCompiler.Generators.props");

    /// <summary>The ids the build props keep out of TreatWarningsAsErrors.</summary>
    private static string[] PropsWarningIds()
    {
        XElement project = XElement.Load(PropsPath);
        string list = project.Descendants("PolicyCompilerWarningIds").Single().Value;
        return list.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    [Fact]
    public void Valid_BuildProps_ListExactlyTheCataloguesWarningIds()
    {
        string[] catalogue = PolicyDiagnostics.All.Where(d => d.Severity == PolicyDiagnosticSeverity.Warning).Select(d => d.Id).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(catalogue, PropsWarningIds().Order(StringComparer.Ordinal).ToArray());

        // The list reaches the compiler: it is appended to WarningsNotAsErrors, which the host imports.
        XElement project = XElement.Load(PropsPath);
        Assert.Contains("$(PolicyCompilerWarningIds)", project.Descendants("WarningsNotAsErrors").Single().Value, StringComparison.Ordinal);
        string host = File.ReadAllText(Path.Combine(Repo.Root, "src", "PolicyCompiler.Gateway.Host", "PolicyCompiler.Gateway.Host.csproj"));
        Assert.Contains("build\\PolicyCompiler.Generators.props", host, StringComparison.Ordinal);
    }

    [Fact]
    public void Valid_WarningOnlyPolicy_ProducesAnEvaluator_AndNoWarningBecomesAnError()
    {
        // PC0103 (a tool name outside MCP's characters) and PC0100 (a rule never reached).
        const string json = """
            { "version": "1", "name": "warned", "tools": {
              "create cluster": { "rules": [ { "action": "deny", "reason": "always" }, { "action": "allow" } ] } } }
            """;
        var (result, output, diagnostics) = GeneratorHarness.Run("/p/warned.json", json);

        Assert.Equal(["PC0100", "PC0103"], diagnostics.Select(d => d.Id).Order(StringComparer.Ordinal));
        Assert.All(diagnostics, d => Assert.Equal(DiagnosticSeverity.Warning, d.Severity));
        // Under TreatWarningsAsErrors the compiler turns every warning into an error except the ids
        // in WarningsNotAsErrors: every id this policy raises must be there.
        string[] notAsErrors = PropsWarningIds();
        Assert.All(diagnostics, d => Assert.Contains(d.Id, notAsErrors));

        Assert.Single(result.GeneratedTrees);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var evaluator = InMemoryCompiler.Create(assembly, "WarnedPolicyEvaluator", new PolicyEvaluatorOptions());
            var decision = evaluator.Evaluate(new ToolCall("create cluster"u8, "{}"u8, "g", "s"));
            Assert.Equal(DecisionKind.Deny, decision.Kind);
            Assert.Equal("/tools/create cluster/rules/0", decision.Rule);
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void Valid_PolicySavedWithABom_HasTheSameHashInPolicycAndInTheBuiltGateway()
    {
        const string json = "{ \"version\": \"1\", \"name\": \"bom\", \"tools\": { \"a\": {} } }\n";
        byte[] bytes = [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(json)];
        string parsed = PolicyParser.Parse("/p/bom.json", bytes).Policy!.Sha256;
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(json))), parsed);

        var (_, output, diagnostics) = GeneratorHarness.Run(new GeneratorHarness.FileBytesAdditionalText("/p/bom.json", bytes));
        Assert.Empty(diagnostics);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var info = (PolicyInfo)assembly.GetType("PolicyCompiler.Generated.CompiledPolicy")!.GetProperty("Info")!.GetValue(null)!;
            Assert.Equal(parsed, info.Sha256);
            Assert.Equal(json, info.SourceText);
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void Valid_StarLayer_IsNeverSelected_AndAppliesToEveryCall()
    {
        const string json = """
            { "version": "1", "name": "layered", "default": "deny", "default_reason": "not named",
              "tools": {
                "*": { "rules": [ { "when": { "args.ns": { "eq": "kube-system" } }, "action": "deny" },
                                  { "when": { "grant": { "eq": "admin" } }, "action": "approve" } ],
                       "limits": [ { "counter": "all", "window": "minute", "max": 2 } ] },
                "Get": {},
                "**": { "action": "deny", "reason": "pattern" },
                "List*": {} } }
            """;
        var policy = PolicyParser.Parse("/p/layered.json", Encoding.UTF8.GetBytes(json)).Policy!;
        var (_, output, diagnostics) = GeneratorHarness.Run("/p/layered.json", json);
        Assert.Empty(diagnostics);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
            var compiled = InMemoryCompiler.Create(assembly, "LayeredPolicyEvaluator", new PolicyEvaluatorOptions { Time = clock, Counters = new MemoryCounterStore() });

            Decision Call(string tool, string args = "{}", string grant = "g")
            {
                var decision = compiled.Evaluate(new ToolCall(Encoding.UTF8.GetBytes(tool), Encoding.UTF8.GetBytes(args), grant, "s"));
                decision.Reservation.Commit();
                return decision;
            }

            // '**' is an ordinary pattern: it, not '*', decides names nothing else matches.
            Assert.Equal(("/tools/**/action", "pattern"), (Call("Other").Rule, Call("Other").Reason));
            var layerDeny = Call("Get", """{"ns":"kube-system"}""");
            Assert.Equal(("/tools/*/rules/0", PolicyText.LayerDenyReason), (layerDeny.Rule, layerDeny.Reason));
            Assert.Equal(DecisionKind.ApprovalRequired, Call("Other", grant: "admin").Kind);
            Assert.Equal("/tools/Get", Call("Get").Rule);
            Assert.Equal("/tools/List*", Call("ListPods").Rule);
            var limited = Call("Get");
            Assert.Equal((DecisionKind.RateLimited, "/tools/*/limits/0"), (limited.Kind, limited.Rule));
            // "Other" selects '**' (deny), but the layer's conditional approve rule could let it through.
            Assert.True(compiled.IsListed("Other"u8));
            Assert.True(new PolicyCompiler.Policy.Interpretation.PolicyInterpreter(policy).IsListed("Other"u8));
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void Valid_StarLayer_WithoutOtherPatterns_LeavesUnnamedToolsToTheDefault()
    {
        const string json = """
            { "version": "1", "name": "deflt", "default": "allow",
              "tools": { "*": { "rules": [ { "when": { "args.x": { "eq": 1 } }, "action": "deny", "reason": "x" } ],
                                "limits": [ { "counter": "all", "window": "minute", "max": 1 } ] },
                         "Named": { "action": "deny" } } }
            """;
        var (_, output, diagnostics) = GeneratorHarness.Run("/p/deflt.json", json);
        Assert.Empty(diagnostics);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
            var compiled = InMemoryCompiler.Create(assembly, "DefltPolicyEvaluator", new PolicyEvaluatorOptions { Time = clock, Counters = new MemoryCounterStore() });
            Assert.Equal("/tools/*/rules/0", compiled.Evaluate(new ToolCall("Unnamed"u8, """{"x":1}"""u8, "g", "s")).Rule);
            var allowed = compiled.Evaluate(new ToolCall("Unnamed"u8, "{}"u8, "g", "s"));
            Assert.Equal((DecisionKind.Allow, "/default"), (allowed.Kind, allowed.Rule));
            allowed.Reservation.Commit();
            var limited = compiled.Evaluate(new ToolCall("Unnamed"u8, "{}"u8, "g", "s"));
            Assert.Equal((DecisionKind.RateLimited, "/tools/*/limits/0"), (limited.Kind, limited.Rule));
            Assert.True(compiled.IsListed("Unnamed"u8));
            Assert.False(compiled.IsListed("Named"u8));
            Assert.Equal("/tools/Named/action", compiled.Evaluate(new ToolCall("Named"u8, "{}"u8, "g", "s")).Rule);
        }
        finally
        {
            context.Unload();
        }
    }
}
