using BenchmarkDotNet.Running;

namespace PolicyCompiler.Benchmarks;

/// <summary>Entry point: BenchmarkDotNet's switcher (<c>--filter</c>, <c>--job</c>, <c>--list</c>...).</summary>
public static class Program
{
    public static void Main(string[] args) =>
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
