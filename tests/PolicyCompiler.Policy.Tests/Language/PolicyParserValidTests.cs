using System.Security.Cryptography;
using System.Text;
using PolicyCompiler.Policy.Language;
using static PolicyCompiler.Policy.Tests.Language.PolicyTestHelpers;

namespace PolicyCompiler.Policy.Tests.Language;

public class PolicyParserValidTests
{
    // The example that started the project, byte for byte as the issue writes it.
    private const string Seed = """
        { "version": "1", "default": "deny",
          "tools": { "CreateCodeConnection": { "limits": [
            { "counter": "createcodeconnection_rate", "window": "minute", "max": 30, "scope": "grant" } ] } } }
        """;

    [Fact]
    public void Valid_Seed_ParsesToTheExpectedModel()
    {
        var policy = ParseValid(Seed, singleQuotes: false);

        Assert.Equal("1", policy.Version);
        Assert.Equal("test", policy.Name);
        Assert.Equal(DefaultAction.Deny, policy.Default);
        Assert.Equal(PolicyText.DefaultDenyReason, policy.DefaultReason);
        Assert.Equal(PolicyMode.Enforce, policy.Mode);
        Assert.Empty(policy.Hide);
        var entry = Assert.Single(policy.Tools);
        Assert.Equal("CreateCodeConnection", entry.Name);
        Assert.False(entry.IsPattern);
        Assert.Equal(ToolAction.Allow, entry.Action);
        Assert.False(entry.ActionIsExplicit);
        Assert.Null(entry.Reason);
        Assert.Equal("/tools/CreateCodeConnection", entry.Pointer);
        Assert.Equal(new SourcePosition(2, 14), entry.Position);
        var limit = Assert.Single(entry.Limits);
        Assert.Equal("createcodeconnection_rate", limit.Counter);
        Assert.Equal(new LimitWindow(60, WindowAlignment.Sliding), limit.Window);
        Assert.Equal(30, limit.Max);
        Assert.Equal(LimitScope.Grant, limit.Scope);
        Assert.Null(limit.Key);
        Assert.Equal(1, limit.Increment);
        Assert.Null(limit.IncrementFrom);
        Assert.Equal("rate limit 'createcodeconnection_rate' allows 30 per minute per grant", limit.Reason);
        Assert.Equal("/tools/CreateCodeConnection/limits/0", limit.Pointer);
    }

    [Fact]
    public void Valid_ShippedSeedFile_IsTheIssueExample()
    {
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "policies", "seed.json"));
        var result = PolicyParser.Parse("policies/seed.json", bytes);
        Assert.Empty(result.Diagnostics);
        Assert.Equal("seed", result.Policy!.Name);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant(), result.Policy.Sha256);
        Assert.Equal(Encoding.UTF8.GetString(bytes), result.Policy.SourceText);
        Assert.Equal(ParseValid(Seed, singleQuotes: false).Tools, result.Policy.Tools);
    }

    [Fact]
    public void Valid_PolicyHash_IsTheSha256OfTheBytesWithoutALeadingBom()
    {
        byte[] text = Encoding.UTF8.GetBytes(Seed);
        byte[] withBom = [0xEF, 0xBB, 0xBF, .. text];
        var plain = PolicyParser.Parse("policies/seed.json", text).Policy!;
        var bommed = PolicyParser.Parse("policies/seed.json", withBom).Policy!;
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(text)), bommed.Sha256);
        Assert.Equal(plain.Sha256, bommed.Sha256);
        Assert.Equal(plain.SourceText, bommed.SourceText);
        // Only a leading BOM is left out: any other byte changes the hash.
        byte[] trailing = [.. text, (byte)' '];
        Assert.NotEqual(plain.Sha256, PolicyParser.Parse("policies/seed.json", trailing).Policy!.Sha256);
    }

    [Theory]
    [InlineData("seed.json")]
    [InlineData("allow-all.json")]
    public void Valid_ShippedPolicy_HasNoDiagnostics(string file)
    {
        var bytes = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "policies", file));
        var result = PolicyParser.Parse(file, bytes);
        Assert.True(result.Diagnostics.Count == 0, string.Join("\n", result.Diagnostics));
        Assert.NotNull(result.Policy);
    }

    [Fact]
    public void Valid_SameBytes_GiveEqualModels()
    {
        // Value equality is what keeps the generator's incremental pipeline cached.
        var a = Parse(Seed, singleQuotes: false);
        var b = Parse(Seed, singleQuotes: false);
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
    }
}
