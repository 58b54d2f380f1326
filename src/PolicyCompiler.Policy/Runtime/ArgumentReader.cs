using System.Runtime.CompilerServices;
using System.Text.Json;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Where one argument path landed in a call's arguments JSON: the result of <see cref="ArgumentReader"/>
/// as plain data (offsets, not a span), so a fixed number of them fit in an inline array on the stack.
/// <c>default</c> is <see cref="PolicyValueKind.Missing"/>.
/// </summary>
public readonly struct ArgumentSlot
{
    private readonly int _start;
    private readonly int _length;
    private readonly PolicyValueKind _kind;
    private readonly bool _hasEscapes;

    internal ArgumentSlot(PolicyValueKind kind, int start, int length, bool hasEscapes)
    {
        _kind = kind;
        _start = start;
        _length = length;
        _hasEscapes = hasEscapes;
    }

    /// <summary>The slot of a value behind a duplicated or undecodable key, or in invalid JSON.</summary>
    internal static ArgumentSlot Ambiguous => new(PolicyValueKind.Ambiguous, 0, 0, false);

    /// <summary>The value's kind.</summary>
    public PolicyValueKind Kind => _kind;

    /// <summary>
    /// The value as <see cref="ArgumentLookup.Find"/> returns it for the same path, sliced from
    /// <paramref name="argumentsJson"/> (the bytes the slot was read from).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public PolicyValue ToValue(ReadOnlySpan<byte> argumentsJson) => _kind switch
    {
        PolicyValueKind.Missing => default,
        PolicyValueKind.Ambiguous => PolicyValue.Ambiguous,
        _ => new PolicyValue { Kind = _kind, Raw = argumentsJson.Slice(_start, _length), HasEscapes = _hasEscapes },
    };
}

/// <summary>
/// Reads every argument path a decision block needs in ONE pass over the arguments JSON, where
/// <see cref="ArgumentLookup.Find"/> scans the whole object once per path (it must see every key to
/// notice a duplicate). The compiled evaluators build one reader per block from the block's paths, at
/// type initialisation, and read into a stack buffer of <see cref="ArgumentSlot"/>s.
/// </summary>
/// <remarks>
/// The result for each path is exactly what <see cref="ArgumentLookup.Find"/> gives (the interpreter
/// keeps using it, and the generator's equivalence property test compares the two): empty arguments
/// are Missing everywhere; invalid JSON, trailing content or nesting deeper than 128 make every path
/// Ambiguous; a name that occurs twice in an object, or an undecodable name (a lone surrogate escape)
/// in an object the path searches, makes the paths through that object's properties Ambiguous; a step
/// into a non-object / non-array, an absent name or an index out of range is Missing.
/// <para>
/// The paths form a trie. The walk descends only into the values of names (and indexes) the trie
/// holds, and skips everything else with <see cref="Utf8JsonReader.Skip"/>, so its recursion depth is
/// the paths' length, not the document's. A duplicate is often found after the first copy was
/// already read: the walk keeps a state per trie node and, at the end, overwrites the slots below an
/// ambiguous node.
/// </para>
/// </remarks>
public sealed class ArgumentReader
{
    private const byte Unseen = 0;
    private const byte Matched = 1;
    private const byte AmbiguousNode = 2;

    private readonly Node[] _nodes;   // preorder: a node's subtree is _nodes[i .. i + SubtreeSize)
    private readonly int _slotCount;

    /// <summary>Prepares a reader for <paramref name="paths"/>; slot <c>i</c> of <see cref="Read"/> receives <c>paths[i]</c>.</summary>
    public ArgumentReader(params ArgumentPath[] paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var root = new Builder(null, -1);
        for (int i = 0; i < paths.Length; i++)
        {
            Builder node = root;
            foreach (PathStep step in paths[i].Steps)
            {
                node = node.Child(step);
            }

            node.Slots.Add(i);
        }

        var nodes = new List<Node>();
        root.Flatten(nodes);
        _nodes = nodes.ToArray();
        _slotCount = paths.Length;
    }

    /// <summary>How many slots <see cref="Read"/> fills (the number of paths).</summary>
    public int SlotCount => _slotCount;

    /// <summary>Fills <c>slots[0 .. SlotCount)</c> from <paramref name="argumentsJson"/> (empty: no arguments, everything Missing).</summary>
    public void Read(ReadOnlySpan<byte> argumentsJson, Span<ArgumentSlot> slots)
    {
        slots = slots[.._slotCount];
        slots.Clear();
        if (argumentsJson.IsEmpty) return;

        // One state byte per trie node; paths are short, so this stays small. Both arrive zeroed
        // (Unseen): stackalloc is zero-initialised in this assembly (no SkipLocalsInit).
        Span<byte> state = _nodes.Length <= 64 ? stackalloc byte[64] : new byte[_nodes.Length];
        state = state[.._nodes.Length];
        if (!ReadScanned(argumentsJson, slots, state))
        {
            // Invalid JSON, trailing content or nesting too deep: the policy cannot know how the
            // server reads the arguments, so every path is Ambiguous.
            slots.Fill(ArgumentSlot.Ambiguous);
            return;
        }

        MarkAmbiguousSubtrees(slots, state);
    }

    /// <summary>
    /// <see cref="Read"/> through <see cref="Utf8JsonReader"/>, the way it was written first: kept as the
    /// reference the scanner is tested against (tests/PolicyCompiler.Policy.Tests, ArgumentReaderTests).
    /// </summary>
    internal void ReadWithJsonReader(ReadOnlySpan<byte> argumentsJson, Span<ArgumentSlot> slots)
    {
        slots = slots[.._slotCount];
        slots.Clear();
        if (argumentsJson.IsEmpty) return;

        Span<byte> state = _nodes.Length <= 64 ? stackalloc byte[64] : new byte[_nodes.Length];
        state = state[.._nodes.Length];
        try
        {
            var reader = new Utf8JsonReader(argumentsJson, ArgumentLookup.ReaderOptions);
            // Read throws on garbage; a second top-level value is trailing content. Either way the
            // policy cannot know how the server reads the arguments: every path is Ambiguous.
            if (!reader.Read())
            {
                slots.Fill(ArgumentSlot.Ambiguous);
                return;
            }

            Visit(ref reader, argumentsJson, 0, slots, state);
            if (reader.Read())
            {
                slots.Fill(ArgumentSlot.Ambiguous);
                return;
            }
        }
        catch (JsonException)
        {
            slots.Fill(ArgumentSlot.Ambiguous);
            return;
        }

        MarkAmbiguousSubtrees(slots, state);
    }

    private void MarkAmbiguousSubtrees(Span<ArgumentSlot> slots, ReadOnlySpan<byte> state)
    {
        for (int i = 1; i < _nodes.Length; i++)
        {
            if (state[i] == AmbiguousNode)
            {
                Node node = _nodes[i];
                for (int n = i; n < i + node.SubtreeSize; n++)
                {
                    foreach (int slot in _nodes[n].Slots) slots[slot] = ArgumentSlot.Ambiguous;
                }

                i += node.SubtreeSize - 1; // the subtree is done
            }
        }
    }

    // The reader is on the first token of the value of node `index`; leaves it on the value's last token.
    private void Visit(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, int index, scoped Span<ArgumentSlot> slots, scoped Span<byte> state)
    {
        Node node = _nodes[index];
        JsonTokenType type = reader.TokenType;
        int start = (int)reader.TokenStartIndex;
        int valueLength = 0;
        bool escaped = false;
        if (type == JsonTokenType.String || type == JsonTokenType.Number)
        {
            valueLength = reader.ValueSpan.Length;
            escaped = reader.ValueIsEscaped;
        }

        if (type == JsonTokenType.StartObject && node.Properties.Length > 0)
        {
            VisitObject(ref reader, json, node, slots, state);
        }
        else if (type == JsonTokenType.StartArray && node.Indexes.Length > 0)
        {
            VisitArray(ref reader, json, node, slots, state);
        }
        else
        {
            reader.Skip(); // a scalar stays put; a container ends on its closing token
        }

        if (node.Slots.Length > 0)
        {
            ArgumentSlot slot = type switch
            {
                // The opening quote is at TokenStartIndex; the value is what follows, still escaped.
                JsonTokenType.String => new ArgumentSlot(PolicyValueKind.String, start + 1, valueLength, escaped),
                JsonTokenType.Number => new ArgumentSlot(PolicyValueKind.Number, start, valueLength, false),
                JsonTokenType.True => new ArgumentSlot(PolicyValueKind.True, start, 4, false),
                JsonTokenType.False => new ArgumentSlot(PolicyValueKind.False, start, 5, false),
                JsonTokenType.Null => new ArgumentSlot(PolicyValueKind.Null, start, 4, false),
                JsonTokenType.StartObject => new ArgumentSlot(PolicyValueKind.Object, start, (int)reader.BytesConsumed - start, false),
                JsonTokenType.StartArray => new ArgumentSlot(PolicyValueKind.Array, start, (int)reader.BytesConsumed - start, false),
                _ => ArgumentSlot.Ambiguous,
            };
            foreach (int i in node.Slots) slots[i] = slot;
        }
    }

    private void VisitObject(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, Node node, scoped Span<ArgumentSlot> slots, scoped Span<byte> state)
    {
        int[] properties = node.Properties;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            int matched = -1;
            if (reader.ValueIsEscaped)
            {
                matched = MatchEscaped(ref reader, properties, state);
            }
            else
            {
                ReadOnlySpan<byte> name = reader.ValueSpan;
                foreach (int child in properties)
                {
                    // Most keys differ from a wanted name in length or first byte: decide those inline.
                    byte[] wanted = _nodes[child].Name;
                    if (name.Length == wanted.Length && (name.Length == 0 || name[0] == wanted[0]) && name.SequenceEqual(wanted))
                    {
                        matched = Claim(child, state);
                        break; // names in one trie node are distinct
                    }
                }
            }

            reader.Read();
            if (matched >= 0)
            {
                Visit(ref reader, json, matched, slots, state);
            }
            else
            {
                reader.Skip();
            }
        }
    }

    // Escaped names are rare: decoded (as ArgumentLookup decodes them) off the common path. An
    // undecodable name makes every property path through this object Ambiguous.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int MatchEscaped(ref Utf8JsonReader reader, int[] properties, scoped Span<byte> state)
    {
        foreach (int child in properties)
        {
            switch (ArgumentLookup.MatchName(ref reader, _nodes[child].Name))
            {
                case ArgumentLookup.NameMatch.Yes:
                    return Claim(child, state);
                case ArgumentLookup.NameMatch.Undecodable:
                    foreach (int poisoned in properties) state[poisoned] = AmbiguousNode;
                    return -1;
            }
        }

        return -1;
    }

    // The first copy of a name is read; a second makes the node Ambiguous and is skipped.
    private static int Claim(int child, scoped Span<byte> state)
    {
        if (state[child] == Unseen)
        {
            state[child] = Matched;
            return child;
        }

        state[child] = AmbiguousNode;
        return -1;
    }

    private void VisitArray(ref Utf8JsonReader reader, ReadOnlySpan<byte> json, Node node, scoped Span<ArgumentSlot> slots, scoped Span<byte> state)
    {
        int[] indexes = node.Indexes;
        int position = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            int matched = -1;
            foreach (int child in indexes)
            {
                if (_nodes[child].Index == position)
                {
                    matched = child;
                    break;
                }
            }

            if (matched >= 0)
            {
                state[matched] = Matched;
                Visit(ref reader, json, matched, slots, state);
            }
            else
            {
                reader.Skip();
            }

            position++;
        }
    }

    // ---- The scanner: the same walk straight over the bytes ----------------------------------------
    //
    // Utf8JsonReader is general (segments, comments, options, token state) and was two thirds of a
    // compiled decision that reads arguments. The scanner below accepts exactly what Utf8JsonReader
    // with ArgumentLookup.ReaderOptions accepts (RFC 8259 grammar, no comments, no trailing commas,
    // at most MaxDepth nested containers; string bytes below 0x20 and malformed escapes refused, other
    // bytes taken as they are) and reports the same token positions, so the slots are those of
    // ReadWithJsonReader; a differential property test holds the two (and ArgumentLookup.Find) together.

    private const int MaxDepth = 128;

    private bool ReadScanned(ReadOnlySpan<byte> json, Span<ArgumentSlot> slots, Span<byte> state)
    {
        int pos = SkipWhitespace(json, 0);
        if (pos == json.Length)
        {
            return false; // only whitespace: no value
        }

        if (!ScanVisit(json, ref pos, 0, 0, slots, state))
        {
            return false;
        }

        return SkipWhitespace(json, pos) == json.Length; // anything after the value is trailing content
    }

    // Called between every two tokens: inlined, and a byte above ' ' (the usual case) decides at once.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SkipWhitespace(ReadOnlySpan<byte> json, int pos)
    {
        while ((uint)pos < (uint)json.Length && json[pos] <= (byte)' ' && json[pos] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            pos++;
        }

        return pos;
    }

    // `pos` is on the first byte of the value of node `index`, inside `depth` containers; on success it
    // is just past the value.
    private bool ScanVisit(ReadOnlySpan<byte> json, ref int pos, int index, int depth, Span<ArgumentSlot> slots, Span<byte> state)
    {
        Node node = _nodes[index];
        int start = pos;
        byte first = json[pos];
        PolicyValueKind kind;
        bool escaped = false;
        int valueStart = start;
        int valueLength;
        switch (first)
        {
            case (byte)'{':
                if (depth >= MaxDepth) return false;
                if (!(node.Properties.Length > 0 ? ScanObject(json, ref pos, node, depth + 1, slots, state) : SkipObject(json, ref pos, depth + 1))) return false;
                kind = PolicyValueKind.Object;
                valueLength = pos - start;
                break;
            case (byte)'[':
                if (depth >= MaxDepth) return false;
                if (!(node.Indexes.Length > 0 ? ScanArray(json, ref pos, node, depth + 1, slots, state) : SkipArray(json, ref pos, depth + 1))) return false;
                kind = PolicyValueKind.Array;
                valueLength = pos - start;
                break;
            case (byte)'"':
                if (!ScanString(json, ref pos, out escaped)) return false;
                kind = PolicyValueKind.String;
                valueStart = start + 1;
                valueLength = pos - start - 2;
                break;
            case (byte)'t':
                if (!json[pos..].StartsWith("true"u8)) return false;
                pos += 4;
                kind = PolicyValueKind.True;
                valueLength = 4;
                break;
            case (byte)'f':
                if (!json[pos..].StartsWith("false"u8)) return false;
                pos += 5;
                kind = PolicyValueKind.False;
                valueLength = 5;
                break;
            case (byte)'n':
                if (!json[pos..].StartsWith("null"u8)) return false;
                pos += 4;
                kind = PolicyValueKind.Null;
                valueLength = 4;
                break;
            default:
                if (!ScanNumber(json, ref pos)) return false;
                kind = PolicyValueKind.Number;
                valueLength = pos - start;
                break;
        }

        if (node.Slots.Length > 0)
        {
            var slot = new ArgumentSlot(kind, valueStart, valueLength, escaped);
            foreach (int i in node.Slots) slots[i] = slot;
        }

        return true;
    }

    private bool ScanObject(ReadOnlySpan<byte> json, ref int pos, Node node, int depth, Span<ArgumentSlot> slots, Span<byte> state)
    {
        int[] properties = node.Properties;
        if (OpensEmpty(json, ref pos, (byte)'}')) return true;

        while (true)
        {
            if (pos >= json.Length || json[pos] != (byte)'"') return false;
            int nameStart = pos + 1;
            if (!ScanString(json, ref pos, out bool nameEscaped)) return false;
            ReadOnlySpan<byte> name = json[nameStart..(pos - 1)];
            int matched = -1;
            if (nameEscaped)
            {
                matched = MatchEscaped(name, properties, state);
            }
            else
            {
                foreach (int child in properties)
                {
                    byte[] wanted = _nodes[child].Name;
                    if (name.Length == wanted.Length && (name.Length == 0 || name[0] == wanted[0]) && name.SequenceEqual(wanted))
                    {
                        matched = Claim(child, state);
                        break; // names in one trie node are distinct
                    }
                }
            }

            pos = SkipWhitespace(json, pos);
            if (pos >= json.Length || json[pos] != (byte)':') return false;
            pos = SkipWhitespace(json, pos + 1);
            if (pos >= json.Length) return false;
            if (!(matched >= 0 ? ScanVisit(json, ref pos, matched, depth, slots, state) : SkipValue(json, ref pos, depth))) return false;
            Separator next = AfterValue(json, ref pos, (byte)'}');
            if (next != Separator.Next) return next == Separator.Closed;
        }
    }

    private bool ScanArray(ReadOnlySpan<byte> json, ref int pos, Node node, int depth, Span<ArgumentSlot> slots, Span<byte> state)
    {
        int[] indexes = node.Indexes;
        if (OpensEmpty(json, ref pos, (byte)']')) return true;

        int position = 0;
        while (true)
        {
            if (pos >= json.Length) return false;
            int matched = -1;
            foreach (int child in indexes)
            {
                if (_nodes[child].Index == position)
                {
                    matched = child;
                    break;
                }
            }

            if (matched >= 0)
            {
                state[matched] = Matched;
                if (!ScanVisit(json, ref pos, matched, depth, slots, state)) return false;
            }
            else if (!SkipValue(json, ref pos, depth))
            {
                return false;
            }

            position++;
            Separator next = AfterValue(json, ref pos, (byte)']');
            if (next != Separator.Next) return next == Separator.Closed;
        }
    }

    // `pos` is on a '{' or '['; moves past it and any whitespace. True when the container is empty (`pos` is then
    // past its close), false when a first member or element follows at `pos`.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool OpensEmpty(ReadOnlySpan<byte> json, ref int pos, byte close)
    {
        pos = SkipWhitespace(json, pos + 1);
        if (pos < json.Length && json[pos] == close)
        {
            pos++;
            return true;
        }

        return false;
    }

    private enum Separator : byte
    {
        Invalid,
        Next,
        Closed,
    }

    // After a member or element: the container's close (`pos` past it), or a comma (`pos` on what follows it,
    // whitespace skipped), or invalid JSON.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Separator AfterValue(ReadOnlySpan<byte> json, ref int pos, byte close)
    {
        pos = SkipWhitespace(json, pos);
        if (pos >= json.Length) return Separator.Invalid;
        if (json[pos] == close)
        {
            pos++;
            return Separator.Closed;
        }

        if (json[pos] != (byte)',') return Separator.Invalid;
        pos = SkipWhitespace(json, pos + 1);
        return Separator.Next;
    }

    // A value nothing reads: validated (so invalid JSON anywhere is noticed) and passed over.
    private static bool SkipValue(ReadOnlySpan<byte> json, ref int pos, int depth)
    {
        switch (json[pos])
        {
            case (byte)'{':
                return depth < MaxDepth && SkipObject(json, ref pos, depth + 1);
            case (byte)'[':
                return depth < MaxDepth && SkipArray(json, ref pos, depth + 1);
            case (byte)'"':
                return ScanString(json, ref pos, out _);
            case (byte)'t':
                return SkipLiteral(json, ref pos, "true"u8);
            case (byte)'f':
                return SkipLiteral(json, ref pos, "false"u8);
            case (byte)'n':
                return SkipLiteral(json, ref pos, "null"u8);
            default:
                return ScanNumber(json, ref pos);
        }
    }

    private static bool SkipLiteral(ReadOnlySpan<byte> json, ref int pos, ReadOnlySpan<byte> literal)
    {
        if (!json[pos..].StartsWith(literal)) return false;
        pos += literal.Length;
        return true;
    }

    private static bool SkipObject(ReadOnlySpan<byte> json, ref int pos, int depth)
    {
        if (OpensEmpty(json, ref pos, (byte)'}')) return true;

        while (true)
        {
            if (pos >= json.Length || json[pos] != (byte)'"' || !ScanString(json, ref pos, out _)) return false;
            pos = SkipWhitespace(json, pos);
            if (pos >= json.Length || json[pos] != (byte)':') return false;
            pos = SkipWhitespace(json, pos + 1);
            if (pos >= json.Length || !SkipValue(json, ref pos, depth)) return false;
            Separator next = AfterValue(json, ref pos, (byte)'}');
            if (next != Separator.Next) return next == Separator.Closed;
        }
    }

    private static bool SkipArray(ReadOnlySpan<byte> json, ref int pos, int depth)
    {
        if (OpensEmpty(json, ref pos, (byte)']')) return true;

        while (true)
        {
            if (pos >= json.Length || !SkipValue(json, ref pos, depth)) return false;
            Separator next = AfterValue(json, ref pos, (byte)']');
            if (next != Separator.Next) return next == Separator.Closed;
        }
    }

    // `pos` is on the opening quote; on success just past the closing one. Bytes below 0x20 must be
    // escaped; an escape is one of \" \\ \/ \b \f \n \r \t or \u and four hex digits (a lone
    // surrogate is accepted here, as Utf8JsonReader accepts it, and refused when decoded).
    private static bool ScanString(ReadOnlySpan<byte> json, ref int pos, out bool escaped)
    {
        escaped = false;
        int i = pos + 1;
        while (true)
        {
            // The run of plain bytes: stop at a quote, a backslash or a control byte. Argument strings
            // are short, and a table lookup per byte beats a vectorised search's set-up on them.
            while ((uint)i < (uint)json.Length && !StringSpecial[json[i]])
            {
                i++;
            }

            if (i >= json.Length) return false; // unterminated
            byte b = json[i];
            if (b == (byte)'"')
            {
                pos = i + 1;
                return true;
            }

            if (b != (byte)'\\') return false; // a control byte
            escaped = true;
            if (i + 1 >= json.Length) return false;
            switch (json[i + 1])
            {
                case (byte)'"':
                case (byte)'\\':
                case (byte)'/':
                case (byte)'b':
                case (byte)'f':
                case (byte)'n':
                case (byte)'r':
                case (byte)'t':
                    i += 2;
                    break;
                case (byte)'u':
                    if (i + 6 > json.Length || !IsHex(json[i + 2]) || !IsHex(json[i + 3]) || !IsHex(json[i + 4]) || !IsHex(json[i + 5])) return false;
                    i += 6;
                    break;
                default:
                    return false;
            }
        }
    }

    // The bytes that end a run of plain string content: '"', '\\' and the control bytes below 0x20.
    private static ReadOnlySpan<bool> StringSpecial =>
    [
        true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true,
        true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true,
        false, false, true, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, true, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
        false, false, false, false, false, false, false, false, false, false, false, false, false, false, false, false,
    ];

    private static bool IsHex(byte b) => (uint)(b - '0') <= 9 || (uint)((b | 0x20) - 'a') <= 5;

    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; what may follow is the container's business.
    private static bool ScanNumber(ReadOnlySpan<byte> json, ref int pos)
    {
        int i = pos;
        if (json[i] == (byte)'-')
        {
            i++;
        }

        if (i >= json.Length) return false;
        if (json[i] == (byte)'0')
        {
            i++;
        }
        else if ((uint)(json[i] - '1') <= 8)
        {
            i = SkipDigits(json, i + 1);
        }
        else
        {
            return false;
        }

        if (i < json.Length && json[i] == (byte)'.')
        {
            int digits = SkipDigits(json, i + 1);
            if (digits == i + 1) return false;
            i = digits;
        }

        if (i < json.Length && (json[i] | 0x20) == (byte)'e')
        {
            i++;
            if (i < json.Length && json[i] is (byte)'+' or (byte)'-')
            {
                i++;
            }

            int digits = SkipDigits(json, i);
            if (digits == i) return false;
            i = digits;
        }

        pos = i;
        return true;
    }

    private static int SkipDigits(ReadOnlySpan<byte> json, int i)
    {
        while (i < json.Length && (uint)(json[i] - '0') <= 9)
        {
            i++;
        }

        return i;
    }

    // An escaped property name (rare): decoded as ArgumentLookup decodes it.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private int MatchEscaped(ReadOnlySpan<byte> escapedName, int[] properties, Span<byte> state)
    {
        foreach (int child in properties)
        {
            switch (ArgumentLookup.MatchEscapedName(escapedName, _nodes[child].Name))
            {
                case ArgumentLookup.NameMatch.Yes:
                    return Claim(child, state);
                case ArgumentLookup.NameMatch.Undecodable:
                    foreach (int poisoned in properties) state[poisoned] = AmbiguousNode;
                    return -1;
            }
        }

        return -1;
    }

    /// <summary>A trie node: the step that leads to it, its children split by kind, and the slots that end here.</summary>
    private sealed class Node(byte[] name, int index, int[] properties, int[] indexes, int[] slots, int subtreeSize)
    {
        public byte[] Name { get; } = name;
        public int Index { get; } = index;
        public int[] Properties { get; } = properties;
        public int[] Indexes { get; } = indexes;
        public int[] Slots { get; } = slots;
        public int SubtreeSize { get; } = subtreeSize;
    }

    private sealed class Builder(byte[]? name, int index)
    {
        private readonly List<Builder> _children = [];

        public List<int> Slots { get; } = [];

        public Builder Child(PathStep step)
        {
            foreach (Builder child in _children)
            {
                bool same = step.PropertyUtf8 is { } stepName
                    ? child._name is { } childName && stepName.AsSpan().SequenceEqual(childName)
                    : child._name is null && child._index == step.Index;
                if (same) return child;
            }

            var created = new Builder(step.PropertyUtf8, step.PropertyUtf8 is null ? step.Index : -1);
            _children.Add(created);
            return created;
        }

        private readonly byte[]? _name = name;
        private readonly int _index = index;

        // Appends this subtree in preorder; returns this node's position.
        public int Flatten(List<Node> nodes)
        {
            int position = nodes.Count;
            nodes.Add(null!); // placeholder until the children's positions are known
            var properties = new List<int>();
            var indexes = new List<int>();
            foreach (Builder child in _children)
            {
                int at = child.Flatten(nodes);
                (child._name is null ? indexes : properties).Add(at);
            }

            nodes[position] = new Node(_name ?? [], _index, properties.ToArray(), indexes.ToArray(), Slots.ToArray(), nodes.Count - position);
            return position;
        }
    }
}
