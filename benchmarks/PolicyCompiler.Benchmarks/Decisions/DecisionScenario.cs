using System.Runtime.CompilerServices;
using System.Text;
using PolicyCompiler.Generated;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Benchmarks.Decisions;

/// <summary>Which evaluator a scenario runs.</summary>
public enum EvaluatorKind
{
    /// <summary>The reference interpreter (<see cref="PolicyInterpreter"/>) over the same policy text.</summary>
    Interpreter,

    /// <summary>The evaluator the source generator compiled from the policy file.</summary>
    Compiled,
}

/// <summary>
/// One benchmark case on one evaluator: the evaluator with its own clock and counter store, the call's
/// bytes, and the decision the case must produce (the smoke test checks it, so a benchmark that
/// silently measured the wrong path would fail). Both evaluators of a case get the same policy text,
/// the same call and the same clock kind, so they do the same work.
/// </summary>
public sealed class DecisionScenario
{
    // Longer than every window the benchmarked calls use (60 s): each reservation prunes the previous one.
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(61);
    private static readonly DateTimeOffset Start = new(2001, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private const string Grant = "agent";
    private const string Session = "2f6c1d0e9b8a4c7d8e5f60718293a4b5";

    private readonly IPolicyEvaluator _evaluator;
    private readonly byte[] _name;
    private readonly byte[] _arguments;

    private DecisionScenario(IPolicyEvaluator evaluator, string name, string arguments, DecisionKind expectedKind, string expectedRule)
    {
        _evaluator = evaluator;
        _name = Encoding.UTF8.GetBytes(name);
        _arguments = Encoding.UTF8.GetBytes(arguments);
        ExpectedKind = expectedKind;
        ExpectedRule = expectedRule;
    }

    /// <summary>The decision every call of this scenario must produce.</summary>
    public DecisionKind ExpectedKind { get; }

    /// <summary>The rule pointer every call of this scenario must name.</summary>
    public string ExpectedRule { get; }

    /// <summary>The evaluator under test.</summary>
    public IPolicyEvaluator Evaluator => _evaluator;

    /// <summary>
    /// Decides the call and commits what it reserved, as the gateway does once the upstream answers:
    /// the counter work of an allowed call is part of its cost, and committing keeps the store's
    /// open reservations from growing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Decision Decide()
    {
        Decision decision = _evaluator.Evaluate(new ToolCall(_name, _arguments, Grant, Session));
        decision.Reservation.Commit();
        return decision;
    }

    /// <summary>Builds <paramref name="kind"/>'s evaluator for <paramref name="benchmarkCase"/>, counters in their steady state.</summary>
    public static DecisionScenario For(DecisionCase benchmarkCase, EvaluatorKind kind)
    {
        switch (benchmarkCase)
        {
            case DecisionCase.ExactAllow:
                return new(Bench(kind, Stepping()), "list_k8s_resources", "{}", DecisionKind.Allow, "/tools/list_k8s_resources");
            case DecisionCase.ExactAllowEks:
                return new(Eks(kind, Stepping()), "list_k8s_resources", "{}", DecisionKind.Allow, "/tools/list_k8s_resources");
            case DecisionCase.GlobMatch:
                return new(Bench(kind, Stepping()), "describe_cluster", """{"name":"prod-eu-1"}""", DecisionKind.Allow, "/tools/describe_*");
            case DecisionCase.ConditionPass:
                return new(
                    Eks(kind, Stepping()),
                    "manage_k8s_resource",
                    """{"operation":"read","cluster_name":"prod-eu-1","kind":"Deployment","api_version":"apps/v1","name":"web","namespace":"shop"}""",
                    DecisionKind.Allow,
                    "/tools/manage_k8s_resource/rules/2");
            case DecisionCase.ConditionFail:
                return new(
                    Eks(kind, Stepping()),
                    "manage_k8s_resource",
                    """{"operation":"read","cluster_name":"prod-eu-1","kind":"ConfigMap","api_version":"v1","name":"coredns","namespace":"kube-system"}""",
                    DecisionKind.Deny,
                    "/tools/manage_k8s_resource/rules/1");
            case DecisionCase.RegexPass:
                return new(Bench(kind, Stepping()), "deploy_stack", """{"cluster_name":"prod-eu-12","template":"web"}""", DecisionKind.Allow, "/tools/deploy_stack/rules/0");
            case DecisionCase.RateLimited:
                return RateLimited(kind);
            case DecisionCase.UnknownTool:
                return new(Eks(kind, Stepping()), "delete_cluster", """{"name":"prod-eu-1"}""", DecisionKind.Deny, "/default");
            case DecisionCase.Wide500Lookup:
                return new(Wide(kind, Stepping()), "update_trail", """{"name":"audit"}""", DecisionKind.Allow, "/tools/update_trail");
            default:
                throw new ArgumentOutOfRangeException(nameof(benchmarkCase), benchmarkCase, null);
        }
    }

    private static DecisionScenario RateLimited(EvaluatorKind kind)
    {
        // A frozen clock and a full counter: every measured call is refused by the log-read limit
        // (30 per minute), reserves nothing, and the state never changes.
        var options = Options(new SteppingClock(Start, TimeSpan.Zero));
        var scenario = new DecisionScenario(Eks(kind, options), "get_pod_logs", """{"cluster_name":"prod-eu-1","namespace":"shop","pod_name":"web-0"}""", DecisionKind.RateLimited, "/tools/get_pod_logs/limits/0");
        for (int i = 0; i < 30; i++)
        {
            Decision filling = scenario.Decide();
            if (filling.Kind != DecisionKind.Allow)
            {
                throw new InvalidOperationException($"filling the log-read limit: call {i} was {filling}");
            }
        }

        return scenario;
    }

    private static PolicyEvaluatorOptions Stepping() => Options(new SteppingClock(Start, Step));

    private static PolicyEvaluatorOptions Options(TimeProvider clock) => new() { Time = clock, Counters = new MemoryCounterStore() };

    private static IPolicyEvaluator Eks(EvaluatorKind kind, PolicyEvaluatorOptions options) =>
        kind == EvaluatorKind.Compiled ? new EksPolicyEvaluator(options) : Interpret(EksPolicyEvaluator.Info, options);

    private static IPolicyEvaluator Bench(EvaluatorKind kind, PolicyEvaluatorOptions options) =>
        kind == EvaluatorKind.Compiled ? new BenchPolicyEvaluator(options) : Interpret(BenchPolicyEvaluator.Info, options);

    private static IPolicyEvaluator Wide(EvaluatorKind kind, PolicyEvaluatorOptions options) =>
        kind == EvaluatorKind.Compiled ? new Wide500PolicyEvaluator(options) : Interpret(Wide500PolicyEvaluator.Info, options);

    /// <summary>The interpreter over the very text the generator compiled (so both read one policy).</summary>
    private static PolicyInterpreter Interpret(PolicyInfo compiled, PolicyEvaluatorOptions options)
    {
        PolicyParseResult parsed = PolicyParser.Parse(compiled.Name + ".json", Encoding.UTF8.GetBytes(compiled.SourceText));
        if (parsed.Policy is null)
        {
            throw new InvalidOperationException($"policy {compiled.Name} does not parse: {string.Join("; ", parsed.Diagnostics)}");
        }

        return new PolicyInterpreter(parsed.Policy, options);
    }
}
