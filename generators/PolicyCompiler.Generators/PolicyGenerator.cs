using System.Collections.Immutable;
using Microsoft.CodeAnalysis;

namespace PolicyCompiler.Generators;

/// <summary>
/// Compiles a policy file (an <c>AdditionalFiles</c> item marked <c>PolicyCompilerPolicy="true"</c>,
/// which <c>build/PolicyCompiler.Generators.props</c> adds from the <c>PolicyFile</c> property) into a
/// switch-based evaluator class and the <c>PolicyCompiler.Generated.CompiledPolicy</c> entry point.
/// An invalid policy becomes PC diagnostics located in the JSON file, and no evaluator.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class PolicyGenerator : IIncrementalGenerator
{
    /// <summary>Names of the pipeline steps, for incremental-caching tests.</summary>
    internal static class TrackingNames
    {
        public const string PolicyFiles = nameof(PolicyFiles);
        public const string ParsedPolicies = nameof(ParsedPolicies);
        public const string CompilationPolicies = nameof(CompilationPolicies);
    }

    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        // 1. Select the policy files: AdditionalFiles whose item metadata marks them as policies
        //    (other AdditionalFiles, e.g. analyzer configuration, are not ours to read).
        IncrementalValuesProvider<AdditionalText> policyFiles = context.AdditionalTextsProvider
            .Combine(context.AnalyzerConfigOptionsProvider)
            .Where(static pair => IsPolicyFile(pair.Left, pair.Right))
            .Select(static (pair, _) => pair.Left)
            .WithTrackingName(TrackingNames.PolicyFiles);

        // 2. Parse and validate each file with the language's own parser (linked from
        //    src/PolicyCompiler.Policy/Language). From here on only equatable data flows: the model
        //    and diagnostics as plain records, so an unchanged file keeps every later step cached.
        IncrementalValuesProvider<ParsedPolicyFile> parsed = policyFiles
            .Select(static (file, cancellationToken) => Parse(file, cancellationToken))
            .WithTrackingName(TrackingNames.ParsedPolicies);

        // 3. Gather the compilation's policies: exactly one may own the CompiledPolicy entry point.
        IncrementalValueProvider<CompilationPolicies> compilation = parsed
            .Collect()
            .Select(static (files, _) => Gather(files))
            .WithTrackingName(TrackingNames.CompilationPolicies);

        // 4. Report diagnostics; emit the evaluator and entry point only when there is no error.
        context.RegisterSourceOutput(compilation, static (output, policies) => Emit(output, policies));
    }

    private static void Emit(SourceProductionContext output, CompilationPolicies policies)
    {
        foreach (DiagnosticInfo diagnostic in policies.Diagnostics)
        {
            output.ReportDiagnostic(diagnostic.ToDiagnostic());
        }

        if (policies.HasErrors)
        {
            return;
        }

        foreach (ParsedPolicyFile file in policies.Files)
        {
            output.CancellationToken.ThrowIfCancellationRequested();
            Emitter.EvaluatorSource source = Emitter.EmitEvaluator(file.Policy!, emitEntryPoint: true);
            output.AddSource(source.HintName, source.Text);
        }
    }
}
