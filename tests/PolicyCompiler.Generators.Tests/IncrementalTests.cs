extern alias generator;

using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PolicyCompiler.Generators.Tests.TestHelpers;
using TrackingNames = generator::PolicyCompiler.Generators.PolicyGenerator.TrackingNames;

namespace PolicyCompiler.Generators.Tests;

/// <summary>Unchanged policy input keeps every step cached: editing C# never re-parses or re-emits the policy.</summary>
public class IncrementalTests
{
    private const string Policy = """{ "version": "1", "tools": { "A": {}, "B*": { "action": "approve" } } }""";

    [Fact]
    public void Valid_SecondRunWithUnchangedPolicy_IsCachedOrUnchangedAtEveryStep()
    {
        GeneratorDriver driver = GeneratorHarness.CreateDriver([new GeneratorHarness.InMemoryAdditionalText("/p/inc.json", Policy)]);
        CSharpCompilation compilation = InMemoryCompiler.CreateCompilation(["class A { }"]);
        driver = driver.RunGenerators(compilation);
        GeneratorRunResult first = driver.GetRunResult().Results.Single();
        Assert.Single(first.GeneratedSources);

        // An edit elsewhere in the program: the policy steps must not run again.
        CSharpCompilation edited = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText("class B { }", InMemoryCompiler.ParseOptions));
        driver = driver.RunGenerators(edited);
        GeneratorRunResult second = driver.GetRunResult().Results.Single();

        foreach (string step in new[] { TrackingNames.PolicyFiles, TrackingNames.ParsedPolicies, TrackingNames.CompilationPolicies })
        {
            var runs = second.TrackedSteps[step];
            Assert.NotEmpty(runs);
            Assert.All(runs.SelectMany(run => run.Outputs), output =>
                Assert.True(output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, $"{step}: {output.Reason}"));
        }

        Assert.All(second.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(run => run.Outputs),
            output => Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
        Assert.Equal(first.GeneratedSources[0].SourceText.ToString(), second.GeneratedSources[0].SourceText.ToString());
    }

    [Fact]
    public void Valid_EditedPolicy_IsParsedAgainAndReEmitted()
    {
        var file = new GeneratorHarness.InMemoryAdditionalText("/p/inc.json", Policy);
        GeneratorDriver driver = GeneratorHarness.CreateDriver([file]);
        CSharpCompilation compilation = InMemoryCompiler.CreateCompilation([]);
        driver = driver.RunGenerators(compilation);

        var changed = new GeneratorHarness.InMemoryAdditionalText("/p/inc.json", Policy.Replace("approve", "deny", StringComparison.Ordinal));
        driver = driver.ReplaceAdditionalText(file, changed).RunGenerators(compilation);
        GeneratorRunResult second = driver.GetRunResult().Results.Single();

        Assert.Contains(second.TrackedSteps[TrackingNames.ParsedPolicies].SelectMany(run => run.Outputs), o => o.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains("Decision.Deny(\"/tools/B*/action\"", second.GeneratedSources.Single().SourceText.ToString(), StringComparison.Ordinal);
    }
}
