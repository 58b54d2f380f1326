using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Cli.Commands;

/// <summary>Reads a policy for the commands that use one (explain, test, run, build), printing diagnostics as check does.</summary>
internal static class PolicyLoading
{
    /// <summary>Exit code when the policy cannot be read or is invalid.</summary>
    public const int Unusable = 2;

    /// <summary>
    /// Parses <paramref name="file"/>; on failure writes why to <paramref name="error"/> and returns null.
    /// Errors are always printed; warnings only when <paramref name="includeWarnings"/> (run and build
    /// show them, as a compile would; explain and test leave them to check).
    /// </summary>
    public static PolicyDocument? TryLoad(string file, TextWriter error, bool includeWarnings = false)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error.WriteLine($"{file}: error: cannot read the file: {e.Message}");
            return null;
        }
        var result = PolicyParser.Parse(file, bytes);
        foreach (var diagnostic in result.Diagnostics)
        {
            // An invalid policy must say everything about why it cannot be used.
            if (includeWarnings || result.Policy is null || diagnostic.Severity == PolicyDiagnosticSeverity.Error) error.WriteLine(diagnostic.ToString());
        }
        return result.Policy;
    }
}
