using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// The pin of a tool's definition (docs/scan.md, "Pinning"): <c>sha256:</c> and the lower-case hex
/// SHA-256 of the canonical JSON of the object <c>{ "description", "inputSchema", "name" }</c> taken
/// from a <c>tools/list</c> entry. Canonical: no insignificant whitespace, object keys in ordinal
/// UTF-16 order at every depth (<see cref="CanonicalJson"/>); a null or absent description or inputSchema
/// is left out. Title, annotations and every other field are not pinned: they change what a client
/// shows, not what the model is told the tool does or accepts. <c>policyc scan --pin</c> writes pins;
/// the gateway recomputes them on every <c>tools/list</c> to catch a definition changed after review.
/// </summary>
public static class ToolDefinitionPin
{
    /// <summary>The prefix of every pin.</summary>
    public const string Prefix = "sha256:";

    /// <summary>Computes the pin of a definition.</summary>
    /// <param name="name">The tool's name.</param>
    /// <param name="description">Its description (null: none).</param>
    /// <param name="inputSchema">Its input schema (null or a JSON null: none).</param>
    public static string Compute(string name, string? description, JsonElement? inputSchema)
    {
        ArgumentNullException.ThrowIfNull(name);
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, CanonicalJson.WriterOptions))
        {
            writer.WriteStartObject();
            if (description is not null)
            {
                writer.WriteString("description", description);
            }
            if (inputSchema is { ValueKind: not (JsonValueKind.Null or JsonValueKind.Undefined) } schema)
            {
                writer.WritePropertyName("inputSchema");
                CanonicalJson.Write(schema, writer);
            }
            writer.WriteString("name", name);
            writer.WriteEndObject();
        }
        return Prefix + Convert.ToHexStringLower(SHA256.HashData(buffer.WrittenSpan));
    }

    /// <summary>
    /// Computes the pin of one <c>tools/list</c> entry (a JSON object). False when the entry cannot be
    /// pinned unambiguously: not an object, no string <c>name</c>, or <c>name</c>, <c>description</c>
    /// or <c>inputSchema</c> given twice (readers disagree on which copy counts), or a description
    /// that is neither a string nor null.
    /// </summary>
    public static bool TryCompute(JsonElement tool, out string name, out string pin)
    {
        name = "";
        pin = "";
        if (tool.ValueKind != JsonValueKind.Object)
        {
            return false;
        }
        string? foundName = null, description = null;
        JsonElement? schema = null;
        int names = 0, descriptions = 0, schemas = 0;
        foreach (JsonProperty property in tool.EnumerateObject())
        {
            if (property.NameEquals("name"u8))
            {
                names++;
                foundName = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : null;
            }
            else if (property.NameEquals("description"u8))
            {
                descriptions++;
                if (property.Value.ValueKind == JsonValueKind.String) description = property.Value.GetString();
                else if (property.Value.ValueKind != JsonValueKind.Null) return false;
            }
            else if (property.NameEquals("inputSchema"u8))
            {
                schemas++;
                schema = property.Value;
            }
        }
        if (names != 1 || foundName is null || descriptions > 1 || schemas > 1)
        {
            return false;
        }
        name = foundName;
        pin = Compute(foundName, description, schema);
        return true;
    }

    /// <summary>Whether <paramref name="text"/> has the form of a pin: <c>sha256:</c> and 64 lower-case hex digits.</summary>
    public static bool IsWellFormed(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length != Prefix.Length + 64 || !text.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        foreach (char c in text.AsSpan(Prefix.Length))
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }
        return true;
    }
}
