using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Interpretation;

/// <summary>The reference evaluator: walks the policy model for every call. (Contract stub; runtime work implements it.)</summary>
public sealed class PolicyInterpreter : IPolicyEvaluator
{
    /// <summary>Creates an interpreter for a validated policy.</summary>
    public PolicyInterpreter(PolicyDocument policy, PolicyEvaluatorOptions? options = null)
    {
        Policy = new PolicyInfo(policy.Name, policy.Sha256, policy.Mode, policy.SourceText);
    }

    /// <inheritdoc/>
    public PolicyInfo Policy { get; }

    /// <inheritdoc/>
    public Decision Evaluate(in ToolCall call) => throw new NotImplementedException("contract: runtime work");

    /// <inheritdoc/>
    public Decision ReserveLimits(in ToolCall call) => throw new NotImplementedException("contract: runtime work");

    /// <inheritdoc/>
    public bool IsListed(ReadOnlySpan<byte> toolNameUtf8) => throw new NotImplementedException("contract: runtime work");
}
