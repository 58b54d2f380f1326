using System.Text.Json;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Scanning.Tests;

public sealed class ToolDefinitionPinTests
{
    private static string PinOf(string toolJson)
    {
        using JsonDocument document = JsonDocument.Parse(toolJson);
        Assert.True(ToolDefinitionPin.TryCompute(document.RootElement, out _, out string pin));
        return pin;
    }

    private const string Tool = """{"name":"get","description":"Get it.","inputSchema":{"type":"object","properties":{"id":{"type":"integer","minimum":1}},"required":["id"]}}""";

    [Fact]
    public void ThePin_IsSha256OfTheCanonicalNameDescriptionAndSchema()
    {
        string canonical = """{"description":"Get it.","inputSchema":{"properties":{"id":{"minimum":1,"type":"integer"}},"required":["id"],"type":"object"},"name":"get"}""";
        string expected = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(canonical)));

        Assert.Equal(expected, PinOf(Tool));
        Assert.True(ToolDefinitionPin.IsWellFormed(expected));
    }

    [Theory]
    [InlineData("""{ "inputSchema": { "required": ["id"], "properties": { "id": { "minimum": 1, "type": "integer" } }, "type": "object" }, "description": "Get it.", "name": "get" }""")]
    [InlineData("""{"name":"g\u0065t","description":"Get it\u002e","inputSchema":{"type":"object","properties":{"id":{"type":"integer","minimum":1}},"required":["id"]}}""")]
    [InlineData("""{"name":"get","title":"Get","annotations":{"readOnlyHint":true},"_meta":{"x":1},"description":"Get it.","inputSchema":{"type":"object","properties":{"id":{"type":"integer","minimum":1}},"required":["id"]}}""")]
    public void KeyOrderSpacingEscapesAndOtherFields_DoNotChangeThePin(string equivalent)
    {
        Assert.Equal(PinOf(Tool), PinOf(equivalent));
    }

    [Theory]
    [InlineData("Get it.", "Get it!")]                      // description
    [InlineData("\"get\"", "\"got\"")]                      // name
    [InlineData("\"minimum\":1", "\"minimum\":0")]          // schema value
    [InlineData("\"required\":[\"id\"]", "\"required\":[]")] // schema structure
    [InlineData("\"minimum\":1", "\"minimum\":1.0")]        // numbers are pinned as written
    public void AnyChangeToTheDefinition_ChangesThePin(string from, string to)
    {
        Assert.NotEqual(PinOf(Tool), PinOf(Tool.Replace(from, to, StringComparison.Ordinal)));
    }

    [Fact]
    public void ANullDescription_IsTheSameAsNone()
    {
        Assert.Equal(PinOf("""{"name":"x"}"""), PinOf("""{"name":"x","description":null}"""));
        Assert.Equal(ToolDefinitionPin.Compute("x", null, null), PinOf("""{"name":"x"}"""));
    }

    [Theory]
    [InlineData("""[]""")]
    [InlineData("""{"description":"no name"}""")]
    [InlineData("""{"name":5}""")]
    [InlineData("""{"name":"a","name":"b"}""")]
    [InlineData("""{"name":"a","description":"x","description":"y"}""")]
    [InlineData("""{"name":"a","inputSchema":{},"inputSchema":{"type":"object"}}""")]
    [InlineData("""{"name":"a","description":7}""")]
    public void AnAmbiguousDefinition_CannotBePinned(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        Assert.False(ToolDefinitionPin.TryCompute(document.RootElement, out _, out _));
    }

    [Theory]
    [InlineData("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true)]
    [InlineData("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", false)]
    [InlineData("sha256:0123", false)]
    [InlineData("md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false)]
    public void IsWellFormed(string pin, bool expected) => Assert.Equal(expected, ToolDefinitionPin.IsWellFormed(pin));
}
