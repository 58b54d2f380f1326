using System.CommandLine;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc test FILE [--cases CASES.json]</c>: runs a policy's test cases (docs/policy-testing.md)
/// with the reference interpreter. The cases file defaults to FILE with <c>.cases.json</c> in place
/// of <c>.json</c>. Prints each failure, then <c>N passed, M failed</c>. Exit 0 all passed, 1 any
/// failed, 2 the policy or the cases file is unusable.
/// </summary>
public static class TestCommand
{
    /// <summary>Exit code when a case failed.</summary>
    public const int Failed = 1;

    /// <summary>Creates the <c>test</c> command.</summary>
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "The policy file" };
        var cases = new Option<string?>("--cases") { Description = "The cases file (default: FILE with .cases.json)" };
        var command = new Command("test", "Run a policy's test cases; print failures and 'N passed, M failed'. Exit 1 on any failure.");
        command.Arguments.Add(file);
        command.Options.Add(cases);
        command.SetAction(parse => Run(parse.GetRequiredValue(file), parse.GetValue(cases), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return command;
    }

    /// <summary>The default cases file of a policy: <c>x.json</c> → <c>x.cases.json</c>.</summary>
    public static string DefaultCasesPath(string policyFile) =>
        Path.Combine(Path.GetDirectoryName(policyFile) ?? "", Path.GetFileNameWithoutExtension(policyFile) + ".cases.json");

    /// <summary>Runs the cases; failures and the summary go to <paramref name="output"/>.</summary>
    public static int Run(string file, string? casesFile, TextWriter output, TextWriter error)
    {
        var policy = PolicyLoading.TryLoad(file, error);
        if (policy is null) return PolicyLoading.Unusable;

        casesFile ??= DefaultCasesPath(file);
        PolicyCaseFile cases;
        try
        {
            cases = PolicyCaseFile.Load(casesFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"{casesFile}: error: cannot read the cases file: {e.Message}");
            return PolicyLoading.Unusable;
        }
        catch (PolicyCaseFormatException e)
        {
            error.WriteLine($"error: {e.Message}");
            return PolicyLoading.Unusable;
        }

        var report = PolicyCaseRunner.Run(cases, options => new PolicyInterpreter(policy, options));
        foreach (var result in report.Results)
        {
            if (!result.Passed) output.WriteLine($"FAIL {result.Case.Name}: {result.Failure}");
        }
        output.WriteLine(report.Summary);
        return report.Failed > 0 ? Failed : 0;
    }
}
