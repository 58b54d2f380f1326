using System.Text;
using Microsoft.CodeAnalysis;
using PolicyCompiler.Generators.Tests.TestHelpers;

namespace PolicyCompiler.Generators.Tests;

/// <summary>
/// The generated evaluator of every shipped policy, checked in under Baselines/ so a change to the
/// emitter or a policy is reviewed as a diff (POLICYCOMPILER_UPDATE_BASELINES=1 rewrites them).
/// </summary>
public class BaselineTests
{
    public static TheoryData<string> ShippedPolicies()
    {
        var data = new TheoryData<string>();
        foreach (string path in Repo.PolicyFiles())
        {
            data.Add(Path.GetFileName(path));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ShippedPolicies))]
    public void Valid_ShippedPolicy_MatchesBaselineAndCompiles(string fileName)
    {
        string json = File.ReadAllText(Path.Combine(Repo.Policies, fileName), Encoding.UTF8);
        // A fixed path: the generated text must not depend on where the repository is checked out.
        var (result, output, diagnostics) = GeneratorHarness.Run("/repo/policies/" + fileName, json);

        Assert.True(!diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error), string.Join("\n", diagnostics));
        SyntaxTree tree = Assert.Single(result.GeneratedTrees);
        Baseline.Verify(Path.ChangeExtension(fileName, ".g.cs"), tree.ToString());
        InMemoryCompiler.Load(output, out var context);
        context.Unload();
    }
}
