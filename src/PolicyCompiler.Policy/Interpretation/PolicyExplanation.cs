using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Interpretation;

/// <summary>A decision and the steps that led to it (for <c>policyc explain</c>).</summary>
/// <param name="Decision">What <see cref="PolicyInterpreter.Evaluate"/> would decide (any reservation already refunded).</param>
/// <param name="Trace">The steps considered, in order.</param>
public sealed record PolicyExplanation(Decision Decision, IReadOnlyList<TraceStep> Trace);

/// <summary>One step of an explanation.</summary>
/// <param name="Pointer">JSON pointer of the policy part considered (empty when the step concerns no part, e.g. "no entry matches").</param>
/// <param name="Text">What was considered and what came of it.</param>
public sealed record TraceStep(string Pointer, string Text)
{
    /// <inheritdoc/>
    public override string ToString() => Pointer.Length == 0 ? Text : $"{Pointer}: {Text}";
}
