using Microsoft.CodeAnalysis;

namespace PolicyCompiler.Generators;

/// <summary>Compiles policy files (AdditionalFiles *.json marked as policies) into evaluators. (Skeleton; generator work fills it.)</summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class PolicyGenerator : IIncrementalGenerator
{
    /// <inheritdoc/>
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
    }
}
