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
            new[] { "$schema", "version", "name", "description", "default", "default_reason", "mode", "approval", "hide", "tools" },
            Names(schema.GetProperty("properties")));
        Assert.Equal(new[] { "action", "reason", "hide", "rules", "limits", "approval", "pin" }, Names(defs.GetProperty("toolEntry").GetProperty("properties")));
        Assert.Equal(new[] { "when", "action", "reason" }, Names(defs.GetProperty("rule").GetProperty("properties")));
        // The '*' layer: rules and limits, and the deciding fields only to forbid them (PC0024).
        var layer = defs.GetProperty("layerEntry").GetProperty("properties");
        Assert.Equal(new[] { "rules", "limits", "action", "reason", "hide", "approval", "pin" }, Names(layer));
        foreach (string field in new[] { "action", "reason", "hide" })
        {
            Assert.Contains("PC0024", layer.GetProperty(field).GetProperty("description").GetString());
            var result = Parse("{ 'version': '1', 'tools': { '*': { '" + field + "': " + (field == "hide" ? "true" : "'deny'") + " } } }");
            Assert.Equal("PC0024", Assert.Single(result.Diagnostics).Id);
        }
        Assert.Equal("#/$defs/layerEntry", schema.GetProperty("properties").GetProperty("tools").GetProperty("properties").GetProperty("*").GetProperty("$ref").GetString());
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
        int retired = doc.IndexOf("## Retired ids", StringComparison.Ordinal);
        foreach (var d in PolicyCompiler.Policy.Language.PolicyDiagnostics.All)
        {
            int at = doc.IndexOf("| " + d.Id + " |", StringComparison.Ordinal);
            Assert.True(at >= 0, d.Id + " is not documented");
            Assert.Equal(d.Severity == PolicyCompiler.Policy.Language.PolicyDiagnosticSeverity.Warning, at > warnings);
            Assert.True(retired < 0 || at < retired, d.Id + " is documented among the retired ids");
        }
        foreach (string id in PolicyCompiler.Policy.Language.PolicyDiagnostics.RetiredIds)
        {
            Assert.True(retired >= 0 && doc.IndexOf("| " + id + " |", retired, StringComparison.Ordinal) > retired, id + " is not documented as retired");
        }
    }
}

/// <summary>docs/policy-language.md: every complete policy it shows is a valid policy.</summary>
public class LanguageDocTests
{
    [Fact]
    public void Docs_EveryCompletePolicyExampleIsValid()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "docs", "policy-language.md"))) dir = dir.Parent;
        Assert.NotNull(dir);
        string doc = File.ReadAllText(Path.Combine(dir!.FullName, "docs", "policy-language.md"));
        int checkedCount = 0;
        foreach (System.Text.RegularExpressions.Match block in System.Text.RegularExpressions.Regex.Matches(doc, "```json\n(.*?)```", System.Text.RegularExpressions.RegexOptions.Singleline))
        {
            string json = block.Groups[1].Value.Trim();
            if (!json.StartsWith('{') || !json.Contains("\"version\"", StringComparison.Ordinal)) continue;
            var result = PolicyCompiler.Policy.Language.PolicyParser.Parse("doc.json", System.Text.Encoding.UTF8.GetBytes(json));
            Assert.True(result.Policy is not null && result.Diagnostics.Count == 0, json + "\n" + string.Join("\n", result.Diagnostics));
            checkedCount++;
        }
        Assert.True(checkedCount >= 5, $"only {checkedCount} complete examples found");
    }
}
