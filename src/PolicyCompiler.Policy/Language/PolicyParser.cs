namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Reads and validates a policy file: strict JSON (duplicate keys, unknown fields and wrong types
/// are errors), then the semantic checks (unreachable rules, impossible conditions, conflicting
/// counters). Every problem is a <see cref="PolicyDiagnostic"/> with line and column.
/// Compiled into both the runtime library and the source generator.
/// </summary>
public static class PolicyParser
{
    /// <summary>Parses and validates <paramref name="utf8"/>, read from <paramref name="filePath"/>.</summary>
    public static PolicyParseResult Parse(string filePath, byte[] utf8)
        => throw new System.NotImplementedException("contract: language work");
}
