using System.Text.Json;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Finds a value in a call's arguments JSON by path, without allocating. A property name that occurs
/// twice in an object on the way yields <see cref="PolicyValueKind.Ambiguous"/> (the server might
/// read either copy, so the policy must not guess). Names are compared decoded, so <c>"a"</c> and
/// <c>"\u0061"</c> are the same name; a name whose escapes do not decode (a lone surrogate, which
/// servers read in different ways) in an object the path searches also yields Ambiguous. Arguments
/// that are not valid JSON are Ambiguous for every path (fail closed): the policy cannot know how the
/// server would read them.
/// </summary>
/// <remarks>
/// This is the reference: the interpreter calls it once per path. Compiled evaluators read all the
/// paths of a block in one pass with <see cref="ArgumentReader"/>, which must give the same values.
/// </remarks>
public static class ArgumentLookup
{
    // Deeper than any real tool's arguments; deeper input is refused (Ambiguous) rather than read.
    internal static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 128 };

    /// <summary>How a property name compares with a name a path asks for.</summary>
    internal enum NameMatch : byte
    {
        No,
        Yes,
        /// <summary>The name's escapes do not decode: it cannot be compared, so the object is ambiguous.</summary>
        Undecodable,
    }

    /// <summary>Finds <paramref name="path"/> in <paramref name="argumentsJson"/> (empty: no arguments, so everything below is missing).</summary>
    public static PolicyValue Find(ReadOnlySpan<byte> argumentsJson, ArgumentPath path)
    {
        if (argumentsJson.IsEmpty) return PolicyValue.Missing;
        try
        {
            return Walk(argumentsJson, path.Steps);
        }
        catch (JsonException)
        {
            return PolicyValue.Ambiguous;
        }
    }

    private static PolicyValue Walk(ReadOnlySpan<byte> json, PathStep[] steps)
    {
        var reader = new Utf8JsonReader(json, ReaderOptions);
        if (!reader.Read()) return PolicyValue.Ambiguous;

        // The whole document must be valid: a byte we never look at could still make the message
        // invalid, and a server that reads it differently must not get past the policy. A first
        // property step scans the entire root object anyway (to catch duplicates), which validates
        // it; otherwise validate in a separate pass.
        bool scansRoot = steps.Length > 0 && steps[0].PropertyUtf8 is not null && reader.TokenType == JsonTokenType.StartObject;
        if (!scansRoot)
        {
            var whole = reader;
            whole.Skip();
            if (whole.Read()) return PolicyValue.Ambiguous; // trailing content (the reader throws first, normally)
        }

        for (int s = 0; s < steps.Length; s++)
        {
            PathStep step = steps[s];
            if (step.PropertyUtf8 is { } name)
            {
                if (reader.TokenType != JsonTokenType.StartObject) return PolicyValue.Missing;
                if (!FindProperty(ref reader, name, checkTrailing: s == 0, out bool ambiguous))
                {
                    return ambiguous ? PolicyValue.Ambiguous : PolicyValue.Missing;
                }
            }
            else
            {
                if (reader.TokenType != JsonTokenType.StartArray || step.Index < 0) return PolicyValue.Missing;
                if (!FindElement(ref reader, step.Index)) return PolicyValue.Missing;
            }
        }
        return ValueAt(ref reader, json);
    }

    // Leaves the reader on the value of the one property called `name`; scans the whole object so a
    // second copy of the name is noticed.
    private static bool FindProperty(ref Utf8JsonReader reader, byte[] name, bool checkTrailing, out bool ambiguous)
    {
        ambiguous = false;
        Utf8JsonReader found = default;
        int matches = 0;
        bool undecodable = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            switch (MatchName(ref reader, name))
            {
                case NameMatch.Yes:
                    // Utf8JsonReader is a struct: a copy is a bookmark we can resume from.
                    found = reader;
                    matches++;
                    break;
                case NameMatch.Undecodable:
                    undecodable = true; // keep reading: the rest must still be valid JSON
                    break;
            }
            reader.Read();
            reader.Skip();
        }
        // At the root's end: nothing may follow (Read throws on garbage, returns true on a second value).
        if (checkTrailing && reader.Read())
        {
            ambiguous = true;
            return false;
        }
        if (matches != 1 || undecodable)
        {
            ambiguous = matches > 1 || undecodable;
            return false;
        }
        reader = found;
        reader.Read();
        return true;
    }

    /// <summary>Compares the property name under <paramref name="reader"/>, decoded, with <paramref name="name"/>.</summary>
    internal static NameMatch MatchName(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        // The arguments are one contiguous span, so ValueSpan is the whole (still escaped) name.
        if (!reader.ValueIsEscaped) return reader.ValueSpan.SequenceEqual(name) ? NameMatch.Yes : NameMatch.No;
        return MatchEscapedName(reader.ValueSpan, name);
    }

    // Not Utf8JsonReader.ValueTextEquals: it throws InvalidOperationException on a lone surrogate,
    // and whether it gets that far depends on the name it is compared with.
    internal static NameMatch MatchEscapedName(ReadOnlySpan<byte> escaped, ReadOnlySpan<byte> name)
    {
        byte[]? rented = null;
        // Unescaping never lengthens the text, so escaped.Length bytes suffice.
        Span<byte> buffer = escaped.Length <= JsonText.StackBytes
            ? stackalloc byte[JsonText.StackBytes]
            : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(escaped.Length));
        try
        {
            if (!JsonText.TryUnescape(escaped, buffer, out int written)) return NameMatch.Undecodable;
            return buffer[..written].SequenceEqual(name) ? NameMatch.Yes : NameMatch.No;
        }
        finally
        {
            if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static bool FindElement(ref Utf8JsonReader reader, int index)
    {
        int i = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (i++ == index) return true;
            reader.Skip();
        }
        return false;
    }

    // Slices are taken from `json` (not from the reader) so the value may outlive the reader.
    private static PolicyValue ValueAt(scoped ref Utf8JsonReader reader, ReadOnlySpan<byte> json)
    {
        int start = (int)reader.TokenStartIndex;
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                // TokenStartIndex is the opening quote; the value is what follows, still escaped.
                return new PolicyValue
                {
                    Kind = PolicyValueKind.String,
                    Raw = json.Slice(start + 1, reader.ValueSpan.Length),
                    HasEscapes = reader.ValueIsEscaped,
                };
            case JsonTokenType.Number:
                return new PolicyValue { Kind = PolicyValueKind.Number, Raw = json.Slice(start, reader.ValueSpan.Length) };
            case JsonTokenType.True:
                return new PolicyValue { Kind = PolicyValueKind.True, Raw = json.Slice(start, 4) };
            case JsonTokenType.False:
                return new PolicyValue { Kind = PolicyValueKind.False, Raw = json.Slice(start, 5) };
            case JsonTokenType.Null:
                return new PolicyValue { Kind = PolicyValueKind.Null, Raw = json.Slice(start, 4) };
            case JsonTokenType.StartObject:
            case JsonTokenType.StartArray:
                var kind = reader.TokenType == JsonTokenType.StartObject ? PolicyValueKind.Object : PolicyValueKind.Array;
                reader.Skip();
                return new PolicyValue { Kind = kind, Raw = json[start..(int)reader.BytesConsumed] };
            default:
                return PolicyValue.Ambiguous;
        }
    }
}
