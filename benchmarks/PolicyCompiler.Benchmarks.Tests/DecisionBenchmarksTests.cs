using PolicyCompiler.Benchmarks.Decisions;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Benchmarks.Tests;

/// <summary>Each decision case measures the path it names, on both evaluators, in a steady state.</summary>
public class DecisionBenchmarksTests
{
    public static TheoryData<DecisionCase> Cases() => new(Enum.GetValues<DecisionCase>());

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryCase_BothEvaluators_DecideAsExpected_AndAgree(DecisionCase benchmarkCase)
    {
        var benchmarks = new DecisionBenchmarks { Case = benchmarkCase };
        benchmarks.Setup();
        DecisionScenario expected = DecisionScenario.For(benchmarkCase, EvaluatorKind.Compiled);

        Decision interpreted = benchmarks.Interpreter();
        Decision compiled = benchmarks.Compiled();

        Assert.Equal(expected.ExpectedKind, compiled.Kind);
        Assert.Equal(expected.ExpectedRule, compiled.Rule);
        Assert.Equal(compiled.Kind, interpreted.Kind);
        Assert.Equal(compiled.Rule, interpreted.Rule);
        Assert.Equal(compiled.Reason, interpreted.Reason);
        Assert.Equal(compiled.Counter, interpreted.Counter);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryCase_ManyCalls_StaySteady(DecisionCase benchmarkCase)
    {
        // More calls than any limit in the policies allows per window: a counter that filled up would
        // turn an allow case into a rate-limited one (and the benchmark would measure the wrong path).
        foreach (EvaluatorKind kind in Enum.GetValues<EvaluatorKind>())
        {
            DecisionScenario scenario = DecisionScenario.For(benchmarkCase, kind);
            for (int i = 0; i < 500; i++)
            {
                Decision decision = scenario.Decide();
                Assert.Equal(scenario.ExpectedKind, decision.Kind);
                Assert.Equal(scenario.ExpectedRule, decision.Rule);
            }
        }
    }

    public static TheoryData<DecisionCase, EvaluatorKind> EveryCase()
    {
        var data = new TheoryData<DecisionCase, EvaluatorKind>();
        foreach (DecisionCase benchmarkCase in Enum.GetValues<DecisionCase>())
        {
            data.Add(benchmarkCase, EvaluatorKind.Interpreter);
            data.Add(benchmarkCase, EvaluatorKind.Compiled);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(EveryCase))]
    public void EveryCase_SteadyState_AllocatesNothing(DecisionCase benchmarkCase, EvaluatorKind kind)
    {
        // The budget's 0 B (exact-name allow) and every other case, asserted here: allocation is deterministic, time
        // is not. Also the keyed limit of ConditionPass: its key's text comes from LimitArguments' cache.
        DecisionScenario scenario = DecisionScenario.For(benchmarkCase, kind);
        for (int i = 0; i < 100; i++)
        {
            scenario.Decide();
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            scenario.Decide();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
