using System;
using System.Collections.Immutable;
using System.Text;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Text;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Generators;

public sealed partial class PolicyGenerator
{
    /// <summary>The AdditionalFiles item metadata that marks a policy (made visible by the .props).</summary>
    internal const string PolicyMetadataKey = "build_metadata.AdditionalFiles.PolicyCompilerPolicy";

    /// <summary>
    /// One policy file after parsing: its model when valid, and its diagnostics as plain data.
    /// A record with value equality (the model and <see cref="EquatableArray{T}"/> compare by value),
    /// so re-parsing an unchanged file yields an equal value and the later steps stay cached.
    /// </summary>
    internal sealed record ParsedPolicyFile(string Path, PolicyDocument? Policy, EquatableArray<DiagnosticInfo> Diagnostics);

    /// <summary>Every policy of the compilation (sorted by path, for deterministic output) and the diagnostics to report.</summary>
    internal sealed record CompilationPolicies(EquatableArray<ParsedPolicyFile> Files, EquatableArray<DiagnosticInfo> Diagnostics, bool HasErrors);

    private static bool IsPolicyFile(AdditionalText file, AnalyzerConfigOptionsProvider options) =>
        options.GetOptions(file).TryGetValue(PolicyMetadataKey, out string? value)
        && string.Equals(value?.Trim(), "true", StringComparison.OrdinalIgnoreCase);

    private static ParsedPolicyFile Parse(AdditionalText file, CancellationToken cancellationToken)
    {
        SourceText? text = file.GetText(cancellationToken);
        if (text is null)
        {
            return new ParsedPolicyFile(file.Path, null, new EquatableArray<DiagnosticInfo>(new[]
            {
                DiagnosticInfo.ForFile(Diagnostics.UnreadablePolicy, file.Path, file.Path),
            }));
        }

        // The parser reads UTF-8 bytes (positions are byte offsets); the compiler already decoded
        // the file, so encode it back. A byte-order mark is not part of SourceText and is dropped,
        // which is why the policy hash is defined without it (PolicyParser): policyc, reading the
        // raw file, and the generator, reading these bytes, compute the same Sha256.
        byte[] utf8 = Encoding.UTF8.GetBytes(text.ToString());
        PolicyParseResult result;
        try
        {
            result = PolicyParser.Parse(file.Path, utf8);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // A parser crash must fail the build with a message, never produce an evaluator.
            return new ParsedPolicyFile(file.Path, null, new EquatableArray<DiagnosticInfo>(new[]
            {
                DiagnosticInfo.ForFile(Diagnostics.ParserFailure, file.Path, exception.GetType().Name + ": " + exception.Message),
            }));
        }

        var diagnostics = new DiagnosticInfo[result.Diagnostics.Count];
        for (int i = 0; i < diagnostics.Length; i++)
        {
            diagnostics[i] = DiagnosticInfo.FromPolicy(result.Diagnostics[i], file.Path, text, utf8);
        }

        return new ParsedPolicyFile(file.Path, result.Policy, new EquatableArray<DiagnosticInfo>(diagnostics));
    }

    private static CompilationPolicies Gather(ImmutableArray<ParsedPolicyFile> files)
    {
        ParsedPolicyFile[] sorted = files.ToArray();
        Array.Sort(sorted, static (a, b) => string.CompareOrdinal(a.Path, b.Path));

        var diagnostics = ImmutableArray.CreateBuilder<DiagnosticInfo>();
        bool hasErrors = false;
        foreach (ParsedPolicyFile file in sorted)
        {
            foreach (DiagnosticInfo diagnostic in file.Diagnostics)
            {
                diagnostics.Add(diagnostic);
                hasErrors |= diagnostic.IsError;
            }

            hasErrors |= file.Policy is null;
        }

        // One gateway, one policy: CompiledPolicy.Create must not have to choose.
        for (int i = 1; i < sorted.Length; i++)
        {
            diagnostics.Add(DiagnosticInfo.ForFile(Diagnostics.MultiplePolicies, sorted[i].Path, sorted[i].Path, sorted[0].Path));
            hasErrors = true;
        }

        return new CompilationPolicies(
            new EquatableArray<ParsedPolicyFile>(sorted),
            new EquatableArray<DiagnosticInfo>(diagnostics.ToArray()),
            hasErrors);
    }
}
