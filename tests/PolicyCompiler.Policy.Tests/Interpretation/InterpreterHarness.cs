using System.Text;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;

namespace PolicyCompiler.Policy.Tests.Interpretation;

/// <summary>An interpreter over policy text (single quotes stand for double quotes) with a manual clock.</summary>
internal sealed class InterpreterHarness
{
    public InterpreterHarness(string policyJson, bool singleQuotes = true)
    {
        var result = PolicyParser.Parse("policies/test.json", Encoding.UTF8.GetBytes(singleQuotes ? policyJson.Replace('\'', '"') : policyJson));
        Assert.True(result.Policy is not null, string.Join("\n", result.Diagnostics));
        Document = result.Policy!;
        Store = new MemoryCounterStore();
        Interpreter = new PolicyInterpreter(Document, new PolicyEvaluatorOptions { Time = Clock, Counters = Store });
    }

    public PolicyDocument Document { get; }
    public ManualTimeProvider Clock { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    public MemoryCounterStore Store { get; }
    public PolicyInterpreter Interpreter { get; }

    public Decision Call(string tool, string? args = null, string grant = "g1", string session = "s1", bool singleQuotes = true)
    {
        byte[] name = Encoding.UTF8.GetBytes(tool);
        byte[] arguments = args is null ? [] : Encoding.UTF8.GetBytes(singleQuotes ? args.Replace('\'', '"') : args);
        var decision = Interpreter.Evaluate(new ToolCall(name, arguments, grant, session));
        decision.Reservation.Commit();
        return decision;
    }

    public Decision Reserve(string tool, string? args = null, string grant = "g1", string session = "s1")
    {
        byte[] arguments = args is null ? [] : Encoding.UTF8.GetBytes(args.Replace('\'', '"'));
        return Interpreter.ReserveLimits(new ToolCall(Encoding.UTF8.GetBytes(tool), arguments, grant, session));
    }

    public PolicyExplanation Explain(string tool, string? args = null, string grant = "g1", string session = "s1")
    {
        byte[] arguments = args is null ? [] : Encoding.UTF8.GetBytes(args.Replace('\'', '"'));
        return Interpreter.Explain(new ToolCall(Encoding.UTF8.GetBytes(tool), arguments, grant, session));
    }

    public bool IsListed(string tool) => Interpreter.IsListed(Encoding.UTF8.GetBytes(tool));

    public static void AssertDecision(Decision decision, DecisionKind kind, string rule)
    {
        Assert.True(decision.Kind == kind && decision.Rule == rule, $"expected {kind} ({rule}), got {decision}");
    }
}
