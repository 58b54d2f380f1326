using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Generators.Tests.TestHelpers;

/// <summary>
/// Compiles generated evaluators in memory and loads them into a collectible load context. The
/// runtime library (PolicyCompiler.Policy) resolves to the copy the tests already loaded, so the
/// generated classes implement the very <see cref="IPolicyEvaluator"/> the tests call.
/// </summary>
internal static class InMemoryCompiler
{
    private static readonly Lazy<ImmutableArray<MetadataReference>> s_references = new(() =>
    {
        var references = ImmutableArray.CreateBuilder<MetadataReference>();
        string trusted = (string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!;
        foreach (string path in trusted.Split(Path.PathSeparator))
        {
            string name = Path.GetFileNameWithoutExtension(path);
            if (name is "netstandard" or "mscorlib" || name.StartsWith("System", StringComparison.Ordinal)
                || name.StartsWith("Microsoft.Extensions", StringComparison.Ordinal)
                || name.StartsWith("PolicyCompiler.Policy", StringComparison.Ordinal))
            {
                references.Add(MetadataReference.CreateFromFile(path));
            }
        }

        string policy = typeof(IPolicyEvaluator).Assembly.Location;
        if (!trusted.Contains(policy, StringComparison.Ordinal))
        {
            references.Add(MetadataReference.CreateFromFile(policy));
        }

        return references.ToImmutable();
    });

    public static ImmutableArray<MetadataReference> References => s_references.Value;

    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    public static CSharpCompilation CreateCompilation(IEnumerable<string> sources, string assemblyName = "Generated") =>
        CSharpCompilation.Create(
            assemblyName,
            sources.Select(source => CSharpSyntaxTree.ParseText(source, ParseOptions)),
            References,
            new CSharpCompilationOptions(
                OutputKind.DynamicallyLinkedLibrary,
                optimizationLevel: OptimizationLevel.Release,
                nullableContextOptions: NullableContextOptions.Enable));

    /// <summary>Compiles <paramref name="compilation"/>; fails the test with every diagnostic (warnings included) when it does not build cleanly.</summary>
    public static Assembly Load(Compilation compilation, out AssemblyLoadContext context)
    {
        using var stream = new MemoryStream();
        var result = compilation.Emit(stream);
        var problems = result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToArray();
        if (!result.Success || problems.Length > 0)
        {
            throw new Xunit.Sdk.XunitException("generated code does not compile cleanly:\n" + string.Join("\n", problems.Take(20)));
        }

        stream.Position = 0;
        context = new AssemblyLoadContext("generated-" + Guid.NewGuid().ToString("N"), isCollectible: true);
        return context.LoadFromStream(stream);
    }

    /// <summary>Creates the evaluator class <paramref name="className"/> from a loaded assembly (test code: reflection is fine here).</summary>
    public static IPolicyEvaluator Create(Assembly assembly, string className, PolicyEvaluatorOptions options)
    {
        Type type = assembly.GetType("PolicyCompiler.Generated." + className, throwOnError: true)!;
        return (IPolicyEvaluator)Activator.CreateInstance(type, options)!;
    }
}
