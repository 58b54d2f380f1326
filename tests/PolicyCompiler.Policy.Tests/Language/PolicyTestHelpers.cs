using System.Text;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Policy.Tests.Language;

/// <summary>Parses policy text written in tests.</summary>
internal static class PolicyTestHelpers
{
    public const string FilePath = "policies/test.json";

    /// <summary>Parses <paramref name="json"/>; single quotes stand for double quotes, to keep test text readable.</summary>
    public static PolicyParseResult Parse(string json, bool singleQuotes = true) =>
        PolicyParser.Parse(FilePath, Encoding.UTF8.GetBytes(singleQuotes ? json.Replace('\'', '"') : json));

    /// <summary>Parses and asserts the policy is valid with no diagnostics at all.</summary>
    public static PolicyDocument ParseValid(string json, bool singleQuotes = true)
    {
        var result = Parse(json, singleQuotes);
        Assert.True(result.Diagnostics.Count == 0, string.Join("\n", result.Diagnostics));
        Assert.NotNull(result.Policy);
        return result.Policy!;
    }

    /// <summary>Parses and asserts the policy is valid with only warnings of id <paramref name="allowed"/>.</summary>
    public static PolicyDocument ParseValid(string allowed, string json, bool singleQuotes = true)
    {
        var result = Parse(json, singleQuotes);
        Assert.True(result.Diagnostics.All(d => d.Id == allowed), string.Join("\n", result.Diagnostics));
        Assert.NotNull(result.Policy);
        return result.Policy!;
    }

    /// <summary>Asserts exactly one diagnostic, with this id, line and column, and returns it.</summary>
    public static PolicyDiagnostic Single(PolicyParseResult result, string id, int line, int column)
    {
        Assert.True(result.Diagnostics.Count == 1, "expected one diagnostic, got:\n" + string.Join("\n", result.Diagnostics));
        var diagnostic = result.Diagnostics[0];
        Assert.Equal(id, diagnostic.Id);
        Assert.Equal((line, column), (diagnostic.Line, diagnostic.Column));
        Assert.Equal(FilePath, diagnostic.FilePath);
        bool isError = diagnostic.Severity == PolicyDiagnosticSeverity.Error;
        Assert.Equal(isError, result.Policy is null);
        return diagnostic;
    }

    public static string ReadShipped(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "policies", name));
}
