namespace PolicyCompiler.Policy.Language;

/// <summary>Severity of a policy diagnostic.</summary>
public enum PolicyDiagnosticSeverity
{
    /// <summary>The policy is invalid: no evaluator is produced and the build fails.</summary>
    Error,
    /// <summary>The policy is valid but probably not what its author meant.</summary>
    Warning,
}

/// <summary>
/// A problem found in a policy file, with a stable id (<c>PC0001</c>...; see docs/diagnostics.md)
/// and a 1-based line and column. Plain data with value equality, so the generator can carry it
/// through its incremental pipeline and turn it into a Roslyn diagnostic at the end.
/// </summary>
/// <param name="Id">Stable id, never reused.</param>
/// <param name="Severity">Error or warning.</param>
/// <param name="Message">What is wrong, in words.</param>
/// <param name="FilePath">The policy file.</param>
/// <param name="Line">1-based line.</param>
/// <param name="Column">1-based column.</param>
/// <param name="Offset">0-based byte offset of the position in the UTF-8 file (for IDE spans).</param>
/// <param name="Length">Length in bytes of the offending token (at least 1).</param>
public sealed record PolicyDiagnostic(
    string Id,
    PolicyDiagnosticSeverity Severity,
    string Message,
    string FilePath,
    int Line,
    int Column,
    int Offset,
    int Length)
{
    /// <summary>The <c>file(line,col): error PC0001: message</c> form that editors and CI parse.</summary>
    public override string ToString() =>
        $"{FilePath}({Line},{Column}): {(Severity == PolicyDiagnosticSeverity.Error ? "error" : "warning")} {Id}: {Message}";
}

/// <summary>The result of reading a policy file: the policy when it is valid, and every diagnostic.</summary>
/// <param name="Policy">The validated policy, or null when any error was found.</param>
/// <param name="Diagnostics">Errors and warnings, in file order.</param>
public sealed record PolicyParseResult(PolicyDocument? Policy, EquatableArray<PolicyDiagnostic> Diagnostics);
