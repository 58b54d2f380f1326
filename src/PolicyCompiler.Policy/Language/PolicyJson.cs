using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text.Json;

namespace PolicyCompiler.Policy.Language;

/// <summary>The kind of a <see cref="JsonNode"/>.</summary>
internal enum JsonNodeKind
{
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
}

/// <summary>
/// A JSON value of the policy file with its byte span. The parser first reads the whole file into
/// this small tree (strict: duplicate keys are reported and dropped) and then interprets it, so
/// every later check can point at the exact key or value token it is about.
/// </summary>
internal sealed class JsonNode
{
    public JsonNodeKind Kind { get; set; }

    /// <summary>Byte offset of the value's first token.</summary>
    public int Offset { get; set; }

    /// <summary>Length in bytes of the first token (a string with its quotes, a number, <c>{</c>...).</summary>
    public int Length { get; set; }

    /// <summary>Decoded text of a string.</summary>
    public string? String { get; set; }

    /// <summary>Value of a number.</summary>
    public double Number { get; set; }

    /// <summary>Literal text of a number as written.</summary>
    public string? NumberText { get; set; }

    /// <summary>Properties of an object, in file order, duplicates removed.</summary>
    public List<JsonProperty> Properties { get; } = new();

    /// <summary>Items of an array.</summary>
    public List<JsonNode> Items { get; } = new();

    /// <summary>The property named <paramref name="name"/>, or null.</summary>
    public JsonProperty? Find(string name)
    {
        foreach (var p in Properties)
        {
            if (string.Equals(p.Name, name, StringComparison.Ordinal)) return p;
        }
        return null;
    }

    /// <summary>The kind in words, for messages.</summary>
    public string Describe() => Kind switch
    {
        JsonNodeKind.Object => "an object",
        JsonNodeKind.Array => "an array",
        JsonNodeKind.String => "a string",
        JsonNodeKind.Number => "a number",
        JsonNodeKind.True or JsonNodeKind.False => "a boolean",
        _ => "null",
    };

    /// <summary>The value as it would be written in JSON (short form for messages).</summary>
    public string Display() => Kind switch
    {
        JsonNodeKind.String => "\"" + String + "\"",
        JsonNodeKind.Number => NumberText ?? Number.ToString("R", CultureInfo.InvariantCulture),
        JsonNodeKind.True => "true",
        JsonNodeKind.False => "false",
        JsonNodeKind.Null => "null",
        JsonNodeKind.Array => "[...]",
        _ => "{...}",
    };
}

/// <summary>A property of an object: its key token and value.</summary>
internal sealed class JsonProperty
{
    public JsonProperty(string name, int nameOffset, int nameLength, JsonNode value)
    {
        Name = name;
        NameOffset = nameOffset;
        NameLength = nameLength;
        Value = value;
    }

    public string Name { get; }

    /// <summary>Byte offset of the key's opening quote.</summary>
    public int NameOffset { get; }

    /// <summary>Length in bytes of the key token, quotes included.</summary>
    public int NameLength { get; }

    public JsonNode Value { get; }
}

/// <summary>Reads a policy file into <see cref="JsonNode"/>s with <see cref="Utf8JsonReader"/>.</summary>
internal static class PolicyJsonReader
{
    /// <summary>
    /// Reads <paramref name="utf8"/> (from <paramref name="start"/>, past a BOM). Syntax errors,
    /// invalid UTF-8 and duplicate keys are reported through <paramref name="report"/>; a syntax error
    /// returns null because nothing after it can be trusted.
    /// </summary>
    public static JsonNode? Read(byte[] utf8, int start, PolicySourceText source, DiagnosticBag report)
    {
        var options = new JsonReaderOptions
        {
            // Strict JSON: no comments, no trailing commas. A policy is a security artifact; one
            // reading everywhere (editor, schema, interpreter, generator) matters more than leniency.
            CommentHandling = JsonCommentHandling.Disallow,
            AllowTrailingCommas = false,
            MaxDepth = 64,
        };
        var reader = new Utf8JsonReader(new ReadOnlySpan<byte>(utf8, start, utf8.Length - start), options);
        try
        {
            if (!reader.Read())
            {
                report.Add(PolicyDiagnostics.InvalidJson, start, 1, "the file is empty");
                return null;
            }
            var root = ReadValue(ref reader, start, report);
            if (root is null) return null;
            // With isFinalBlock the reader itself rejects trailing content after the root value.
            reader.Read();
            return root;
        }
        catch (JsonException e)
        {
            int offset = source.OffsetFromReaderPosition(e.LineNumber ?? 0, (e.BytePositionInLine ?? 0) + (e.LineNumber is 0 or null ? start : 0));
            report.Add(PolicyDiagnostics.InvalidJson, offset, 1, TrimReaderMessage(e.Message));
            return null;
        }
    }

    private static JsonNode? ReadValue(ref Utf8JsonReader reader, int start, DiagnosticBag report)
    {
        int offset = start + (int)reader.TokenStartIndex;
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
            {
                var node = new JsonNode { Kind = JsonNodeKind.Object, Offset = offset, Length = 1 };
                Dictionary<string, JsonProperty>? seen = null;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    int nameOffset = start + (int)reader.TokenStartIndex;
                    int nameLength = reader.ValueSpan.Length + 2;
                    string? name = GetString(ref reader, nameOffset, nameLength, report);
                    reader.Read();
                    var value = ReadValue(ref reader, start, report);
                    if (value is null) return null;
                    if (name is null) continue;
                    var property = new JsonProperty(name, nameOffset, nameLength, value);
                    seen ??= new Dictionary<string, JsonProperty>(StringComparer.Ordinal);
                    if (seen.TryGetValue(name, out var first))
                    {
                        report.AddDuplicate(property, first);
                        continue;
                    }
                    seen.Add(name, property);
                    node.Properties.Add(property);
                }
                return node;
            }
            case JsonTokenType.StartArray:
            {
                var node = new JsonNode { Kind = JsonNodeKind.Array, Offset = offset, Length = 1 };
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    var item = ReadValue(ref reader, start, report);
                    if (item is null) return null;
                    node.Items.Add(item);
                }
                return node;
            }
            case JsonTokenType.String:
            {
                int length = reader.ValueSpan.Length + 2;
                return new JsonNode
                {
                    Kind = JsonNodeKind.String,
                    Offset = offset,
                    Length = length,
                    String = GetString(ref reader, offset, length, report) ?? string.Empty,
                };
            }
            case JsonTokenType.Number:
            {
                string text = System.Text.Encoding.UTF8.GetString(reader.ValueSpan.ToArray());
                bool ok = double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double number)
                    && !double.IsInfinity(number) && !double.IsNaN(number);
                if (!ok)
                {
                    report.Add(PolicyDiagnostics.InvalidJson, offset, reader.ValueSpan.Length, $"the number {text} is out of range");
                }
                return new JsonNode { Kind = JsonNodeKind.Number, Offset = offset, Length = reader.ValueSpan.Length, Number = number, NumberText = text };
            }
            case JsonTokenType.True:
                return new JsonNode { Kind = JsonNodeKind.True, Offset = offset, Length = 4 };
            case JsonTokenType.False:
                return new JsonNode { Kind = JsonNodeKind.False, Offset = offset, Length = 5 };
            default:
                return new JsonNode { Kind = JsonNodeKind.Null, Offset = offset, Length = 4 };
        }
    }

    private static string? GetString(ref Utf8JsonReader reader, int offset, int length, DiagnosticBag report)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            // System.Text.Json validates UTF-8 only when a string is transcoded.
            report.Add(PolicyDiagnostics.InvalidUtf8, offset, length);
            return null;
        }
    }

    /// <summary>Drops the reader's own position suffix: the diagnostic carries the position.</summary>
    private static string TrimReaderMessage(string message)
    {
        int at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        string text = (at >= 0 ? message.Substring(0, at) : message).Trim();
        return text.EndsWith(".", StringComparison.Ordinal) ? text.Substring(0, text.Length - 1) : text;
    }
}
