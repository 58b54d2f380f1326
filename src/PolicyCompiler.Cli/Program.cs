using System.CommandLine;
using PolicyCompiler.Cli.Commands;

namespace PolicyCompiler.Cli;

/// <summary><c>policyc</c>: the policy command-line tool. Each subcommand lives in its own file under <c>Commands/</c>.</summary>
public static class Program
{
    /// <summary>Builds the root command: one registration line per subcommand.</summary>
    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand("policyc: check, explain, test, build and run MCP gateway policies (docs/policy-language.md)");
        root.Subcommands.Add(CheckCommand.Create());
        root.Subcommands.Add(RunCommand.Create());
        root.Subcommands.Add(BuildCommand.Create());
        root.Subcommands.Add(ExplainCommand.Create());
        root.Subcommands.Add(TestCommand.Create());
        root.Subcommands.Add(ScanCommand.Create());
        root.Subcommands.Add(GrantCommand.Create());
        root.Subcommands.Add(ApprovalsCommand.Create());
        return root;
    }

    /// <summary>Runs <c>policyc</c>.</summary>
    public static int Main(string[] args)
    {
        // `policyc run` starts the upstream server through policyc itself (no orphan even on SIGKILL, docs/gateway.md).
        if (PolicyCompiler.Gateway.Hosting.GatewayCommandLine.TryRunInternalCommand(args, out int exitCode))
        {
            return exitCode;
        }

        // No termination handler: `policyc run` forwards SIGINT/SIGTERM to the upstream and exits with its
        // status; the other commands keep the default (the signal ends them).
        return CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }
}
