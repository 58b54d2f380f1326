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
