using BenchmarkDotNet.Attributes;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Benchmarks.Decisions;

/// <summary>
/// One tool-call decision per operation, compiled evaluator against the reference interpreter
/// (the baseline: the Ratio column is compiled time / interpreted time for the same case). Each
/// operation decides the call and commits its reservation, as the gateway does for a forwarded call.
/// </summary>
[MemoryDiagnoser]
public class DecisionBenchmarks
{
    private DecisionScenario _interpreter = null!;
    private DecisionScenario _compiled = null!;

    /// <summary>The case (policy, tool, arguments, counter state).</summary>
    [ParamsAllValues]
    public DecisionCase Case { get; set; }

    /// <summary>Builds both evaluators with their own clocks and counter stores.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _interpreter = DecisionScenario.For(Case, EvaluatorKind.Interpreter);
        _compiled = DecisionScenario.For(Case, EvaluatorKind.Compiled);
    }

    /// <summary>The reference interpreter.</summary>
    [Benchmark(Baseline = true)]
    public Decision Interpreter() => _interpreter.Decide();

    /// <summary>The generated evaluator.</summary>
    [Benchmark]
    public Decision Compiled() => _compiled.Decide();
}
