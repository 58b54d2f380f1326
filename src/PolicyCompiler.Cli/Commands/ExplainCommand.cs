using System.CommandLine;
using System.Text;
using System.Text.Json;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc explain FILE --tool NAME [--args JSON] [--grant G] [--session S]</c>: decides one call
/// with the reference interpreter and prints the decision, the deciding rule, the reason and the
/// trace of every step considered. Counters start empty (one call, fresh state). Exit 0 when the
/// call was decided (whatever the decision), 2 when the policy or the arguments are unusable.
/// </summary>
public static class ExplainCommand
{
    /// <summary>Creates the <c>explain</c> command.</summary>
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "The policy file" };
        var tool = new Option<string>("--tool") { Description = "The tool name", Required = true };
        var args = new Option<string?>("--args") { Description = "The call's arguments as a JSON object" };
        var grant = new Option<string>("--grant") { Description = "The caller's grant", DefaultValueFactory = _ => "default" };
        var session = new Option<string>("--session") { Description = "The MCP session id", DefaultValueFactory = _ => "session-1" };
        var command = new Command("explain", "Decide one tool call and show the decision, the rule, the reason and the steps considered.");
        command.Arguments.Add(file);
        command.Options.Add(tool);
        command.Options.Add(args);
        command.Options.Add(grant);
        command.Options.Add(session);
        command.SetAction(parse => Run(
            parse.GetRequiredValue(file),
            parse.GetRequiredValue(tool),
            parse.GetValue(args),
            parse.GetRequiredValue(grant),
            parse.GetRequiredValue(session),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));
        return command;
    }

    /// <summary>Explains one call; writes the explanation to <paramref name="output"/>.</summary>
    public static int Run(string file, string tool, string? argumentsJson, string grant, string session, TextWriter output, TextWriter error)
    {
        var policy = PolicyLoading.TryLoad(file, error);
        if (policy is null) return PolicyLoading.Unusable;

        byte[] arguments = [];
        if (argumentsJson is not null)
        {
            arguments = Encoding.UTF8.GetBytes(argumentsJson);
            // Say so plainly instead of letting every condition read the arguments as ambiguous.
            try
            {
                using var _ = JsonDocument.Parse(arguments);
            }
            catch (JsonException e)
            {
                error.WriteLine($"--args: not valid JSON: {e.Message}");
                return PolicyLoading.Unusable;
            }
        }

        var interpreter = new PolicyInterpreter(policy);
        var explanation = interpreter.Explain(new ToolCall(Encoding.UTF8.GetBytes(tool), arguments, grant, session));
        var decision = explanation.Decision;
        output.WriteLine($"decision: {PolicyCaseRunner.Name(decision.Kind)}");
        output.WriteLine($"rule:     {decision.Rule}");
        if (decision.Reason is not null) output.WriteLine($"reason:   {decision.Reason}");
        if (decision.Kind == DecisionKind.RateLimited)
        {
            output.WriteLine($"counter:  {decision.Counter}");
            output.WriteLine($"retry:    {(decision.RetryAfter == TimeSpan.MaxValue ? "never" : decision.RetryAfter.TotalSeconds + "s")}");
        }
        output.WriteLine($"listed:   {(interpreter.IsListed(Encoding.UTF8.GetBytes(tool)) ? "yes" : "no")} (in tools/list)");
        output.WriteLine("trace:");
        for (int i = 0; i < explanation.Trace.Count; i++) output.WriteLine($"  {i + 1}. {explanation.Trace[i]}");
        return 0;
    }
}
