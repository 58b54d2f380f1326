extern alias generator;

using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;

namespace PolicyCompiler.Generators.Tests.TestHelpers;

/// <summary>Runs the generator through <see cref="CSharpGeneratorDriver"/> the way the compiler does.</summary>
internal static class GeneratorHarness
{
    public const string PolicyMetadataKey = "build_metadata.AdditionalFiles.PolicyCompilerPolicy";

    public static CSharpGeneratorDriver CreateDriver(IEnumerable<AdditionalText> files, IEnumerable<string>? policyPaths = null, bool trackSteps = true)
    {
        var marked = new HashSet<string>(policyPaths ?? files.Select(f => f.Path), StringComparer.Ordinal);
        return CSharpGeneratorDriver.Create(
            new[] { new generator::PolicyCompiler.Generators.PolicyGenerator().AsSourceGenerator() },
            files,
            InMemoryCompiler.ParseOptions,
            new OptionsProvider(marked),
            new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: trackSteps));
    }

    /// <summary>Runs the generator on one policy file; returns the run result and the compilation with the generated code.</summary>
    public static (GeneratorDriverRunResult Result, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(string path, string json) =>
        Run(new InMemoryAdditionalText(path, json));

    /// <summary>Runs the generator on one policy file given as an additional text.</summary>
    public static (GeneratorDriverRunResult Result, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(AdditionalText file)
    {
        GeneratorDriver driver = CreateDriver(new[] { file });
        CSharpCompilation compilation = InMemoryCompiler.CreateCompilation(Array.Empty<string>());
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out Compilation output, out ImmutableArray<Diagnostic> diagnostics);
        return (driver.GetRunResult(), output, diagnostics);
    }

    /// <summary>An additional file held in memory.</summary>
    public sealed class InMemoryAdditionalText(string path, string text) : AdditionalText
    {
        private readonly SourceText _text = SourceText.From(text, System.Text.Encoding.UTF8);

        public override string Path { get; } = path;

        public override SourceText GetText(CancellationToken cancellationToken = default) => _text;
    }

    /// <summary>
    /// An additional file given as raw bytes, decoded the way the compiler decodes a file on disk
    /// (encoding detected from a byte-order mark, which is not part of the text).
    /// </summary>
    public sealed class FileBytesAdditionalText(string path, byte[] bytes) : AdditionalText
    {
        private readonly SourceText _text = SourceText.From(new MemoryStream(bytes), System.Text.Encoding.UTF8);

        public override string Path { get; } = path;

        public override SourceText GetText(CancellationToken cancellationToken = default) => _text;
    }

    private sealed class OptionsProvider(HashSet<string> policyPaths) : AnalyzerConfigOptionsProvider
    {
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Options(null);

        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => GlobalOptions;

        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) =>
            new Options(policyPaths.Contains(textFile.Path) ? "true" : null);
    }

    private sealed class Options(string? policyFlag) : AnalyzerConfigOptions
    {
        public override bool TryGetValue(string key, [NotNullWhen(true)] out string? value)
        {
            value = key == PolicyMetadataKey ? policyFlag : null;
            return value is not null;
        }
    }
}
