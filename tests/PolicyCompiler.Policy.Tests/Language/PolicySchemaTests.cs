using System.Text.Json;
using static PolicyCompiler.Policy.Tests.Language.PolicyTestHelpers;

namespace PolicyCompiler.Policy.Tests.Language;

/// <summary>The JSON Schema and the parser name the same fields and operators.</summary>
public class PolicySchemaTests
{
    private static JsonElement Schema() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "policies", "policy.schema.json"))).RootElement;

    private static string[] Names(JsonElement properties) => properties.EnumerateObject().Select(p => p.Name).ToArray();

    [Fact]
    public void Schema_FieldsAreTheParsersFields()
    {
        var schema = Schema();
        var defs = schema.GetProperty("$defs");
        Assert.Equal(
            new[] { "$schema", "version", "name", "description", "default", "default_reason", "mode", "hide", "tools" },
            Names(schema.GetProperty("properties")));
        Assert.Equal(new[] { "action", "reason", "hide", "rules", "limits", "approval", "pin" }, Names(defs.GetProperty("toolEntry").GetProperty("properties")));
        Assert.Equal(new[] { "when", "action", "reason" }, Names(defs.GetProperty("rule").GetProperty("properties")));
        Assert.Equal(
            new[] { "counter", "window", "max", "scope", "key", "increment", "increment_from", "align", "reason" },
            Names(defs.GetProperty("limit").GetProperty("properties")));
    }

    [Fact]
    public void Schema_OperatorsAreAllAcceptedByTheParser()
    {
        foreach (var op in Names(Schema().GetProperty("$defs").GetProperty("operators").GetProperty("properties")))
        {
            var result = Parse("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.v': { '" + op + "': {} } }, 'action': 'deny' } ] } } }");
            // An object is no operator's operand: PC0012 proves the operator itself was recognised.
            Assert.Equal("PC0012", Assert.Single(result.Diagnostics).Id);
        }
    }
}

/// <summary>docs/diagnostics.md documents every id with its severity.</summary>
public class DiagnosticsDocTests
{
    [Fact]
    public void Docs_ListEveryId()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "docs", "diagnostics.md"))) dir = dir.Parent;
        Assert.NotNull(dir);
        string doc = File.ReadAllText(Path.Combine(dir!.FullName, "docs", "diagnostics.md"));
        int warnings = doc.IndexOf("## Warnings", StringComparison.Ordinal);
        foreach (var d in PolicyCompiler.Policy.Language.PolicyDiagnostics.All)
        {
            int at = doc.IndexOf("| " + d.Id + " |", StringComparison.Ordinal);
            Assert.True(at >= 0, d.Id + " is not documented");
            Assert.Equal(d.Severity == PolicyCompiler.Policy.Language.PolicyDiagnosticSeverity.Warning, at > warnings);
        }
    }
}
