using System.Text;
using PolicyCompiler.Generators.Tests.TestHelpers;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Generators.Tests;

/// <summary>The compiled evaluator exposes the policy's approval timeouts exactly as the interpreter does (docs/approvals.md).</summary>
public class ApprovalTimeoutEmissionTests
{
    [Fact]
    public void Valid_ApprovalTimeouts_AreExposedLikeTheInterpreterExposesThem()
    {
        const string policy = """
            { "version": "1", "approval": { "timeout": "10m" }, "tools": {
              "*": { "rules": [ { "when": { "args.force": { "eq": true } }, "action": "approve" } ], "approval": { "timeout": 30 } },
              "Delete*": { "action": "approve", "approval": { "timeout": "1h" } },
              "z_pinned": { "pin": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "action": "approve", "approval": { "timeout": "90s" } },
              "plain": { "action": "approve" } } }
            """;
        var (result, output, diagnostics) = GeneratorHarness.Run("/p/approvals.json", policy);
        Assert.Empty(diagnostics);
        string source = result.GeneratedTrees[0].ToString();
        Assert.Contains("ApprovalTimeouts = new global::System.Collections.Generic.Dictionary<string, long>", source, StringComparison.Ordinal);
        var assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            var info = (PolicyInfo)assembly.GetType("PolicyCompiler.Generated.CompiledPolicy")!.GetProperty("Info")!.GetValue(null)!;
            var parsed = PolicyCompiler.Policy.Language.PolicyParser.Parse("/p/approvals.json", Encoding.UTF8.GetBytes(policy));
            var interpreted = new PolicyCompiler.Policy.Interpretation.PolicyInterpreter(parsed.Policy!).Policy;

            Assert.Equal(600, info.ApprovalTimeouts[""]);
            Assert.Equal(30, info.ApprovalTimeouts["/tools/*"]);
            Assert.Equal(3600, info.ApprovalTimeouts["/tools/Delete*"]);
            Assert.Equal(90, info.ApprovalTimeouts["/tools/z_pinned"]);
            Assert.Equal(4, info.ApprovalTimeouts.Count);
            Assert.Single(info.Pins);
            Assert.Equal(interpreted, info); // PolicyInfo equality compares pins and approval timeouts by content
        }
        finally
        {
            context.Unload();
        }

        // A policy without approval timeouts gets no initializer: every other policy's output is unchanged.
        var (plain, _, _) = GeneratorHarness.Run("/p/plain.json", """{ "version": "1", "tools": { "a": { "action": "approve" } } }""");
        Assert.DoesNotContain("ApprovalTimeouts", plain.GeneratedTrees[0].ToString(), StringComparison.Ordinal);
    }
}
