using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// The one canonical JSON form this project hashes (audit-log argument hashes, tool-definition pins),
/// so equal JSON always gives the same hash whatever its spacing, key order or escaping: no
/// insignificant whitespace, object keys in ordinal UTF-16 order at every depth (as RFC 8785 JCS;
/// repeated keys keep their order, so the form stays deterministic), strings re-escaped minimally,
/// numbers exactly as written. Never used on the hot path.
/// </summary>
public static class CanonicalJson
{
    /// <summary>The writer options of the canonical form.</summary>
    public static JsonWriterOptions WriterOptions { get; } = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
        MaxDepth = 256,
    };

    /// <summary>Writes the canonical form of <paramref name="json"/> (empty means <c>{}</c>) to <paramref name="output"/>.</summary>
    public static void Write(ReadOnlySpan<byte> json, IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output, WriterOptions);
        if (json.IsEmpty)
        {
            writer.WriteStartObject();
            writer.WriteEndObject();
            return;
        }

        using JsonDocument document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 256 });
        Write(document.RootElement, writer);
    }

    /// <summary>Writes the canonical form of <paramref name="element"/>.</summary>
    public static void Write(JsonElement element, Utf8JsonWriter writer)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var properties = new List<JsonProperty>();
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    properties.Add(property);
                }

                // OrderBy is stable (List.Sort is not): repeated keys keep their order.
                writer.WriteStartObject();
                foreach (JsonProperty property in properties.OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(property.Name);
                    Write(property.Value, writer);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (JsonElement item in element.EnumerateArray())
                {
                    Write(item, writer);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(element.GetString());
                break;
            case JsonValueKind.Number:
                writer.WriteRawValue(element.GetRawText(), skipInputValidation: true);
                break;
            case JsonValueKind.True:
                writer.WriteBooleanValue(true);
                break;
            case JsonValueKind.False:
                writer.WriteBooleanValue(false);
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }
}
