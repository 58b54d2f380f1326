using System.CommandLine;
using PolicyCompiler.Gateway.Transport.StreamableHttp;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc grant new NAME</c>: prints a fresh random bearer token for grant NAME, and the line to add
/// to the HTTP gateway's grants file (<c>--grants</c>, docs/http.md "Grants"). The file stores only the
/// token's SHA-256, so the token is shown once and kept by whoever runs the agent.
/// </summary>
public static class GrantCommand
{
    /// <summary>Creates the <c>grant</c> command.</summary>
    public static Command Create()
    {
        var name = new Argument<string>("NAME") { Description = "The grant's name (what grant-scoped limits and conditions see)." };
        var create = new Command("new", "Print a new random token for grant NAME and the grants-file line that admits it.");
        create.Arguments.Add(name);
        create.SetAction(parse =>
        {
            (string token, string line) = GrantTable.NewGrant(parse.GetRequiredValue(name));
            TextWriter output = parse.InvocationConfiguration.Output;
            output.WriteLine($"token: {token}");
            output.WriteLine($"grants file line: {line}");
            parse.InvocationConfiguration.Error.WriteLine("Give the token to the agent (Authorization: Bearer TOKEN); add the line to the JSON object of the --grants file. The token is not stored anywhere.");
            return 0;
        });
        var grant = new Command("grant", "Manage the HTTP gateway's bearer-token grants.");
        grant.Subcommands.Add(create);
        return grant;
    }
}
