using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Policy.Tests.Testing;

/// <summary>Every shipped policy has a cases file, and the interpreter passes all of it.</summary>
public class ShippedPolicyCasesTests
{
    private static string PoliciesDirectory => Path.Combine(AppContext.BaseDirectory, "policies");

    public static TheoryData<string> Policies()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(PoliciesDirectory, "*.json"))
        {
            string name = Path.GetFileName(file);
            if (!name.EndsWith(".cases.json", StringComparison.Ordinal) && !name.EndsWith(".schema.json", StringComparison.Ordinal)) data.Add(name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void Shipped_policy_passes_its_cases(string policyName)
    {
        string policyPath = Path.Combine(PoliciesDirectory, policyName);
        string casesPath = Path.Combine(PoliciesDirectory, Path.GetFileNameWithoutExtension(policyName) + ".cases.json");
        Assert.True(File.Exists(casesPath), $"{policyName} has no cases file");

        var policy = PolicyParser.Parse(policyPath, File.ReadAllBytes(policyPath)).Policy;
        Assert.NotNull(policy);
        var cases = PolicyCaseFile.Load(casesPath);
        Assert.NotEmpty(cases.Cases);
        var report = PolicyCaseRunner.Run(cases, options => new PolicyInterpreter(policy, options));
        var failures = string.Join("\n", report.Results.Where(r => !r.Passed).Select(r => r.Case.Name + ": " + r.Failure));
        Assert.True(report.Failed == 0, failures);
    }
}
