using System.Text;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// The values a limit takes from a call's arguments (docs/policy-language.md, "Limits"): the
/// <c>key</c> a counter is kept per, and the <c>increment_from</c> amount. Shared by the interpreter
/// and the compiled evaluators (generated code calls these), so both charge the same counters.
/// </summary>
public static class LimitArguments
{
    /// <summary>
    /// The text of a key value: a string decoded (its raw escaped text when an escape is malformed),
    /// any other JSON value as written. A missing key, and a key behind a duplicated property
    /// (ambiguous), count under the empty key.
    /// </summary>
    public static string KeyText(in PolicyValue value)
    {
        switch (value.Kind)
        {
            case PolicyValueKind.Missing:
            case PolicyValueKind.Ambiguous:
                return string.Empty;
            case PolicyValueKind.String when value.Text is { } text:
                return text;
            case PolicyValueKind.String when value.HasEscapes:
                // Unescaping never lengthens the text, so Raw.Length bytes suffice.
                byte[] buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(value.Raw.Length);
                try
                {
                    return JsonText.TryUnescape(value.Raw, buffer, out int written)
                        ? Encoding.UTF8.GetString(buffer, 0, written)
                        : Encoding.UTF8.GetString(value.Raw);
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }

            default:
                return CachedText(value.Raw);
        }
    }

    // Recently decoded keys, so a keyed limit does not allocate a string per call in the steady state
    // (the same few clusters, repositories... call after call). Entries are immutable and replaced
    // whole, so readers need no lock; a collision or a new key just decodes again. The bytes are
    // compared exactly: a key can only ever map to its own text.
    private const int CachedKeys = 64;
    private const int MaxCachedKeyBytes = 64;
    private static readonly KeyEntry?[] s_keys = new KeyEntry?[CachedKeys];

    private sealed class KeyEntry(byte[] utf8, string text)
    {
        public byte[] Utf8 { get; } = utf8;

        public string Text { get; } = text;
    }

    /// <summary><see cref="Encoding.GetString(ReadOnlySpan{byte})"/> of UTF-8 <paramref name="raw"/>, the same string object for the same bytes while cached.</summary>
    internal static string CachedText(ReadOnlySpan<byte> raw)
    {
        if (raw.Length > MaxCachedKeyBytes)
        {
            return Encoding.UTF8.GetString(raw);
        }

        // FNV-1a: cheap for short keys; only spreads keys over the slots (equality is checked below).
        uint hash = 2166136261;
        foreach (byte b in raw)
        {
            hash = (hash ^ b) * 16777619;
        }

        ref KeyEntry? slot = ref s_keys[(int)(hash & (CachedKeys - 1))];
        KeyEntry? entry = System.Threading.Volatile.Read(ref slot);
        if (entry is not null && raw.SequenceEqual(entry.Utf8))
        {
            return entry.Text;
        }

        string text = Encoding.UTF8.GetString(raw);
        System.Threading.Volatile.Write(ref slot, new KeyEntry(raw.ToArray(), text));
        return text;
    }

    /// <summary>
    /// The amount of an <c>increment_from</c> limit: true with the value when it is a finite,
    /// non-negative JSON number; false otherwise (missing, ambiguous, another kind, negative),
    /// and the call is then denied (fail closed).
    /// </summary>
    public static bool TryGetAmount(in PolicyValue value, out double amount)
    {
        if (value.Kind == PolicyValueKind.Number && JsonText.TryGetNumber(value, out amount) && amount >= 0 && !double.IsInfinity(amount))
        {
            return true;
        }

        amount = 0;
        return false;
    }
}
