using BenchmarkDotNet.Running;
using PolicyCompiler.Benchmarks.Decisions;

namespace PolicyCompiler.Benchmarks;

/// <summary>
/// Entry point: BenchmarkDotNet's switcher (<c>--filter</c>, <c>--job</c>, <c>--list</c>...), or
/// <c>--calls CASE EVALUATOR COUNT</c>: decide one case COUNT times and exit, for instruction counts
/// under valgrind (<c>benchmarks/instructions.sh</c>), which stay stable on a loaded machine.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 4 && args[0] == "--calls")
        {
            return RunCalls(Enum.Parse<DecisionCase>(args[1]), Enum.Parse<EvaluatorKind>(args[2]), int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture));
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }

    private static int RunCalls(DecisionCase benchmarkCase, EvaluatorKind kind, int count)
    {
        DecisionScenario scenario = DecisionScenario.For(benchmarkCase, kind);
        int expected = 0;
        for (int i = 0; i < count; i++)
        {
            var decision = scenario.Decide();
            if (decision.Kind == scenario.ExpectedKind) expected++;
        }

        // Checked, so the loop cannot be optimised away and a wrong path shows up.
        if (expected != count)
        {
            Console.Error.WriteLine($"{benchmarkCase}/{kind}: {count - expected} of {count} calls were not {scenario.ExpectedKind}");
            return 1;
        }

        return 0;
    }
}
