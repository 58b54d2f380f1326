using System.CommandLine;
using PolicyCompiler.Gateway.Hosting;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc run http POLICY.json --listen ADDRESS:PORT --upstream URL [options]</c>: a built gateway's
/// <c>http</c> command (same options and behaviour, docs/http.md), deciding with the interpreter.
/// </summary>
public static class RunHttpCommand
{
    /// <summary>Creates the <c>http</c> subcommand of <c>run</c>.</summary>
    public static Command Create()
    {
        var policyFile = new Argument<string>("POLICY") { Description = "The policy file (JSON)." };
        var options = new HttpCommandOptions();
        var command = new Command("http", "Run the Streamable HTTP gateway with the interpreter: policyc run http POLICY.json --upstream URL [options].");
        command.Arguments.Add(policyFile);
        options.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            PolicyDocument? policy = RunCommand.Load(parse.GetRequiredValue(policyFile), parse.InvocationConfiguration.Error);
            if (policy is null)
            {
                return 1;
            }

            return await options.RunAsync(
                parse,
                evaluatorOptions => new PolicyInterpreter(policy, evaluatorOptions),
                new PolicyInfo(policy.Name, policy.Sha256, policy.Mode, policy.SourceText),
                "policyc-run",
                cancellationToken).ConfigureAwait(false);
        });
        return command;
    }
}
