using System;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Generators;

public sealed partial class PolicyGenerator
{
    /// <summary>
    /// The generator's own diagnostics. Policy problems carry the language's ids (PC0001...,
    /// docs/diagnostics.md); the generator adds ids of its own in the PC09xx range, never reused.
    /// </summary>
    internal static class Diagnostics
    {
        /// <summary>The one category of every PolicyCompiler diagnostic.</summary>
        public const string Category = "PolicyCompiler";

        public static readonly DiagnosticDescriptor MultiplePolicies = new(
            id: "PC0901",
            title: "More than one policy file",
            messageFormat: "Policy file '{0}' is not compiled: a compilation takes exactly one policy and '{1}' is already its policy",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true,
            customTags: WellKnownDiagnosticTags.NotConfigurable);

        public static readonly DiagnosticDescriptor UnreadablePolicy = new(
            id: "PC0902",
            title: "Policy file cannot be read",
            messageFormat: "Policy file '{0}' cannot be read",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true,
            customTags: WellKnownDiagnosticTags.NotConfigurable);

        public static readonly DiagnosticDescriptor ParserFailure = new(
            id: "PC0903",
            title: "Policy parser failed",
            messageFormat: "The policy parser failed: {0}",
            category: Category,
            defaultSeverity: DiagnosticSeverity.Error,
            isEnabledByDefault: true,
            customTags: WellKnownDiagnosticTags.NotConfigurable);

        /// <summary>
        /// The descriptor of a language diagnostic. The id and message come from the linked parser
        /// (its catalogue fixes them); errors are not configurable, warnings may be suppressed.
        /// </summary>
#pragma warning disable RS1017 // The id is a constant of the linked language catalogue, carried as data through the pipeline.
        public static DiagnosticDescriptor ForPolicy(string id, bool isError) => new(
            id: id,
            title: "Policy problem",
            messageFormat: "{0}",
            category: Category,
            defaultSeverity: isError ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
            isEnabledByDefault: true,
            customTags: isError ? new[] { WellKnownDiagnosticTags.NotConfigurable } : Array.Empty<string>());
#pragma warning restore RS1017
    }

    /// <summary>
    /// A diagnostic as comparable data (no <see cref="Location"/>, which holds a syntax tree or
    /// file reference and would defeat caching); turned into a <see cref="Diagnostic"/> at output.
    /// </summary>
    internal sealed record DiagnosticInfo(
        string Id,
        bool IsError,
        string Message,
        string FilePath,
        TextSpan Span,
        LinePositionSpan LineSpan,
        DiagnosticDescriptor? Descriptor,
        EquatableArray<string> Arguments)
    {
        public Diagnostic ToDiagnostic()
        {
            Location location = Location.Create(FilePath, Span, LineSpan);
            if (Descriptor is not null)
            {
                return Diagnostic.Create(Descriptor, location, messageArgs: Arguments.AsSpan().ToArray());
            }

            return Diagnostic.Create(Diagnostics.ForPolicy(Id, IsError), location, Message);
        }

        /// <summary>A generator diagnostic located at the start of a file.</summary>
        public static DiagnosticInfo ForFile(DiagnosticDescriptor descriptor, string filePath, params string[] arguments) =>
            new(descriptor.Id, descriptor.DefaultSeverity == DiagnosticSeverity.Error, descriptor.MessageFormat.ToString(),
                filePath, default, default, descriptor, new EquatableArray<string>(arguments));

        /// <summary>
        /// A language diagnostic, located where the parser says: its line and column give the
        /// editor position; its UTF-8 byte offset and length become a character span of the text.
        /// </summary>
        public static DiagnosticInfo FromPolicy(PolicyDiagnostic diagnostic, string filePath, SourceText text, byte[] utf8)
        {
            int startByte = Clamp(diagnostic.Offset, 0, utf8.Length);
            int endByte = Clamp(diagnostic.Offset + Math.Max(diagnostic.Length, 1), startByte, utf8.Length);
            int start = Math.Min(Encoding.UTF8.GetCharCount(utf8, 0, startByte), text.Length);
            int length = Encoding.UTF8.GetCharCount(utf8, startByte, endByte - startByte);
            var span = new TextSpan(start, Math.Min(length, text.Length - start));

            var startPosition = new LinePosition(Math.Max(diagnostic.Line - 1, 0), Math.Max(diagnostic.Column - 1, 0));
            LinePosition endPosition = span.Length > 0 ? text.Lines.GetLinePosition(span.End) : startPosition;
            if (endPosition < startPosition)
            {
                endPosition = startPosition;
            }

            return new DiagnosticInfo(
                diagnostic.Id,
                diagnostic.Severity == PolicyDiagnosticSeverity.Error,
                diagnostic.Message,
                filePath,
                span,
                new LinePositionSpan(startPosition, endPosition),
                Descriptor: null,
                EquatableArray<string>.Empty);
        }

        private static int Clamp(int value, int min, int max) => value < min ? min : value > max ? max : value;
    }
}
