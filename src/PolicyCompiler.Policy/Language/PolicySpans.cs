using System.Collections.Generic;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Where each part of the model came from in the file, keyed by JSON pointer: the key token of a
/// property and the first token of every value. The validator works on the model and uses this map
/// to put its warnings on the exact token; it never leaves the parse step (not part of the model).
/// </summary>
internal sealed class PolicySpans
{
    private readonly Dictionary<string, JsonProperty> _keys = new(System.StringComparer.Ordinal);
    private readonly Dictionary<string, JsonNode> _values = new(System.StringComparer.Ordinal);

    public void Add(string pointer, JsonProperty property)
    {
        _keys[pointer] = property;
        _values[pointer] = property.Value;
    }

    public void Add(string pointer, JsonNode node) => _values[pointer] = node;

    /// <summary>The key of the property at <paramref name="pointer"/>, or null for array items.</summary>
    public JsonProperty? Key(string pointer) => _keys.TryGetValue(pointer, out var p) ? p : null;

    /// <summary>The value at <paramref name="pointer"/>.</summary>
    public JsonNode? Value(string pointer) => _values.TryGetValue(pointer, out var n) ? n : null;

    /// <summary>The span of the key when the pointer names a property, else of the value's first token.</summary>
    public bool TryGetSpan(string pointer, out int offset, out int length)
    {
        if (_keys.TryGetValue(pointer, out var p))
        {
            offset = p.NameOffset;
            length = p.NameLength;
            return true;
        }
        if (_values.TryGetValue(pointer, out var n))
        {
            offset = n.Offset;
            length = n.Length;
            return true;
        }
        offset = 0;
        length = 1;
        return false;
    }
}
