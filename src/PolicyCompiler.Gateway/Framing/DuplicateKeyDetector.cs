namespace PolicyCompiler.Gateway.Framing;

/// <summary>
/// Finds a property name that occurs twice in the same JSON object, comparing names after unescaping
/// (<c>"name"</c> and <c>"\u006eame"</c> are the same key). Parsers disagree on duplicates (first wins,
/// last wins, error), so a message carrying one could be read differently by the policy and by the
/// server: the gateway rejects it instead (RFC 8259 §4: names SHOULD be unique).
/// <para>
/// Linear time (a hash table keyed by object and name, with a per-process random hash seed so a
/// client cannot force collisions) and no allocation in steady state: every buffer is reused, and a
/// generation stamp empties the table between messages without clearing it. The first
/// <see cref="DirectCompareLimit"/> keys of a message are compared directly instead (a typical MCP request
/// has fewer: hashing them cost more than comparing, ~2,000 instructions per tools/call); the table is
/// built from them when a message has more, so the cost per key stays bounded.
/// </para>
/// </summary>
internal sealed class DuplicateKeyDetector
{
    private struct Entry
    {
        public int Ordinal;
        public int Offset;
        public int Length;
        public int Hash;
    }

    private byte[] _names = new byte[256];
    private int _namesLength;
    private Entry[] _entries = new Entry[16];
    private int _count;
    private int[] _slots = new int[32];
    private uint[] _slotGeneration = new uint[32];
    private uint _generation = 1;
    private int[] _stack = new int[16];
    private int _depth;
    private int _nextOrdinal;
    private int _current = -1;
    private bool _hashed; // the table holds this message's keys (only past DirectCompareLimit)

    /// <summary>Up to this many keys per message, a new key is compared with each recorded one (no hashing).</summary>
    internal const int DirectCompareLimit = 8;

    /// <summary>Forgets every key: call before each message.</summary>
    public void Reset()
    {
        _count = 0;
        _namesLength = 0;
        _depth = 0;
        _nextOrdinal = 0;
        _current = -1;
        _hashed = false; // the table is emptied (a new generation) when a message next needs it
    }

    /// <summary>A new object starts: its keys are checked against each other only.</summary>
    public void EnterObject()
    {
        if (_depth == _stack.Length)
        {
            Array.Resize(ref _stack, _stack.Length * 2);
        }

        _stack[_depth++] = _current;
        _current = _nextOrdinal++;
    }

    /// <summary>The current object ends: keys go back to being checked against its parent's.</summary>
    public void ExitObject() => _current = _stack[--_depth];

    /// <summary>Records <paramref name="name"/> (unescaped UTF-8) in the current object; false when it is already there.</summary>
    public bool TryAdd(ReadOnlySpan<byte> name)
    {
        if (_count < DirectCompareLimit)
        {
            for (int i = 0; i < _count; i++)
            {
                ref Entry recorded = ref _entries[i];
                if (recorded.Ordinal == _current && recorded.Length == name.Length &&
                    _names.AsSpan(recorded.Offset, recorded.Length).SequenceEqual(name))
                {
                    return false;
                }
            }

            Append(name, hash: 0, slot: -1);
            return true;
        }

        if (!_hashed)
        {
            HashRecorded();
        }

        int hash = Hash(_current, name);
        if ((_count + 1) * 2 > _slots.Length)
        {
            Grow();
        }

        int mask = _slots.Length - 1;
        int slot = hash & mask;
        while (_slotGeneration[slot] == _generation)
        {
            ref Entry existing = ref _entries[_slots[slot]];
            if (existing.Hash == hash && existing.Ordinal == _current &&
                _names.AsSpan(existing.Offset, existing.Length).SequenceEqual(name))
            {
                return false;
            }

            slot = (slot + 1) & mask;
        }

        Append(name, hash, slot);
        return true;
    }

    private static int Hash(int ordinal, ReadOnlySpan<byte> name)
    {
        var hasher = default(HashCode);
        hasher.Add(ordinal);
        hasher.AddBytes(name);
        return hasher.ToHashCode();
    }

    /// <summary>Records a key; <paramref name="slot"/> is its free table slot, or -1 while keys are compared directly.</summary>
    private void Append(ReadOnlySpan<byte> name, int hash, int slot)
    {
        if (_namesLength + name.Length > _names.Length)
        {
            Array.Resize(ref _names, Math.Max(_names.Length * 2, _namesLength + name.Length));
        }

        name.CopyTo(_names.AsSpan(_namesLength));
        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2);
        }

        _entries[_count] = new Entry { Ordinal = _current, Offset = _namesLength, Length = name.Length, Hash = hash };
        _namesLength += name.Length;
        if (slot >= 0)
        {
            _slots[slot] = _count;
            _slotGeneration[slot] = _generation;
        }

        _count++;
    }

    /// <summary>The message outgrew direct comparison: hash the keys recorded so far into a fresh generation of the table.</summary>
    private void HashRecorded()
    {
        _hashed = true;
        for (int i = 0; i < _count; i++)
        {
            ref Entry recorded = ref _entries[i];
            recorded.Hash = Hash(recorded.Ordinal, _names.AsSpan(recorded.Offset, recorded.Length));
        }

        Rehash(_slots.Length);
    }

    private void Grow() => Rehash(_slots.Length * 2);

    /// <summary>Rebuilds the table (<paramref name="size"/> slots) from every recorded key: new arrays, or a new generation of the same ones.</summary>
    private void Rehash(int size)
    {
        if (size != _slots.Length)
        {
            _slots = new int[size];
            _slotGeneration = new uint[size];
        }
        else if (++_generation == 0)
        {
            Array.Clear(_slotGeneration);
            _generation = 1;
        }

        int mask = size - 1;
        for (int i = 0; i < _count; i++)
        {
            int slot = _entries[i].Hash & mask;
            while (_slotGeneration[slot] == _generation)
            {
                slot = (slot + 1) & mask;
            }

            _slots[slot] = i;
            _slotGeneration[slot] = _generation;
        }
    }
}
