namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// The result of a condition, in three-valued (Kleene) logic. <see cref="Unknown"/> means the
/// condition cannot be decided from the call: an operator met a value of the wrong type (a number
/// sent as a string to <c>gt</c>), a path went through a duplicated key, or a regex timed out.
/// Rules resolve Unknown toward the safer outcome (fail closed): a deny or approve rule fires, an
/// allow rule does not. See docs/policy-language.md, "Fail-closed conditions".
/// </summary>
public enum Truth : byte
{
    /// <summary>The condition does not hold.</summary>
    False = 0,
    /// <summary>The condition holds.</summary>
    True = 1,
    /// <summary>The condition cannot be decided.</summary>
    Unknown = 2,
}
