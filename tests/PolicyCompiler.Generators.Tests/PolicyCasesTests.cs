using System.Reflection;
using System.Text;
using Microsoft.CodeAnalysis;
using PolicyCompiler.Generators.Tests.TestHelpers;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Generators.Tests;

/// <summary>Every shipped policy's <c>*.cases.json</c> (what <c>policyc test</c> runs on the interpreter) passes on the compiled evaluator too.</summary>
public class PolicyCasesTests
{
    public static TheoryData<string> ShippedPolicies() => BaselineTests.ShippedPolicies();

    [Theory]
    [MemberData(nameof(ShippedPolicies))]
    public void Valid_ShippedPolicy_CompiledEvaluatorPassesItsCases(string fileName)
    {
        string policyPath = Path.Combine(Repo.Policies, fileName);
        string casesPath = Path.ChangeExtension(policyPath, null) + ".cases.json";
        Assert.True(File.Exists(casesPath), $"{fileName} has no cases file");
        PolicyCaseFile cases = PolicyCaseFile.Load(casesPath);
        Assert.NotEmpty(cases.Cases);

        var (_, output, diagnostics) = GeneratorHarness.Run(policyPath, File.ReadAllText(policyPath, Encoding.UTF8));
        Assert.True(!diagnostics.Any(d => d.Severity == DiagnosticSeverity.Error), string.Join("\n", diagnostics));
        Assembly assembly = InMemoryCompiler.Load(output, out var context);
        try
        {
            // The entry point the gateway host calls.
            MethodInfo create = assembly.GetType("PolicyCompiler.Generated.CompiledPolicy", throwOnError: true)!.GetMethod("Create")!;
            PolicyTestReport report = PolicyCaseRunner.Run(cases, options => (IPolicyEvaluator)create.Invoke(null, [options])!);

            string failures = string.Join("\n", report.Results.Where(r => !r.Passed).Select(r => r.Case.Name + ": " + r.Failure));
            Assert.True(report.Failed == 0, failures);
            Assert.Equal(cases.Cases.Count, report.Passed);
        }
        finally
        {
            context.Unload();
        }
    }
}
