using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace PolicyCompiler.Gateway.Audit;

/// <summary>
/// The canonical form of tool arguments that the audit log hashes, so the same arguments always give
/// the same hash whatever the client's spacing, key order or escaping: no insignificant whitespace,
/// object keys sorted by ordinal UTF-16 order (as RFC 8785 JCS does), strings re-escaped minimally,
/// numbers exactly as written. Runs on the audit writer's thread, never on the hot path.
/// </summary>
internal static class CanonicalJson
{
    private static readonly JsonWriterOptions WriterOptions = new()
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
        WriteElement(document.RootElement, writer);
    }

    private static void WriteElement(JsonElement element, Utf8JsonWriter writer)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var properties = new List<JsonProperty>();
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    properties.Add(property);
                }

                properties.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                writer.WriteStartObject();
                foreach (JsonProperty property in properties)
                {
                    writer.WritePropertyName(property.Name);
                    WriteElement(property.Value, writer);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (JsonElement item in element.EnumerateArray())
                {
                    WriteElement(item, writer);
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
