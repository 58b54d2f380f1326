namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// A glob over decoded text: <c>*</c> matches any run of characters (including <c>/</c>),
/// <c>?</c> exactly one character (Unicode scalar), everything else itself (ordinal, case-sensitive).
/// Used for tool-name patterns and the <c>glob</c> operator.
/// </summary>
public sealed class GlobPattern
{
    private readonly byte[] _utf8;

    /// <summary>Compiles <paramref name="pattern"/>.</summary>
    public GlobPattern(string pattern)
    {
        Pattern = pattern;
        _utf8 = System.Text.Encoding.UTF8.GetBytes(pattern);
    }

    /// <summary>The pattern as written.</summary>
    public string Pattern { get; }

    /// <summary>Whether UTF-8 <paramref name="text"/> matches.</summary>
    public bool IsMatch(ReadOnlySpan<byte> text)
    {
        // Classic wildcard matching: advance greedily, remember the last '*' and, on a mismatch,
        // let that star swallow one more character. Worst case O(n·m), no allocation, no recursion.
        ReadOnlySpan<byte> pattern = _utf8;
        int p = 0, t = 0, starP = -1, starT = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == (byte)'*')
            {
                starP = p++;
                starT = t;
            }
            else if (p < pattern.Length && pattern[p] == (byte)'?')
            {
                t += ScalarLength(text[t..]);
                p++;
            }
            else if (p < pattern.Length && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (starP >= 0)
            {
                p = starP + 1;
                starT += ScalarLength(text[starT..]);
                t = starT;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == (byte)'*') p++;
        return p == pattern.Length;
    }

    /// <summary>Whether <paramref name="text"/> matches.</summary>
    public bool IsMatch(ReadOnlySpan<char> text)
    {
        ReadOnlySpan<char> pattern = Pattern;
        int p = 0, t = 0, starP = -1, starT = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                starP = p++;
                starT = t;
            }
            else if (p < pattern.Length && pattern[p] == '?')
            {
                t += ScalarLength(text, t);
                p++;
            }
            else if (p < pattern.Length && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (starP >= 0)
            {
                p = starP + 1;
                starT += ScalarLength(text, starT);
                t = starT;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }

    /// <inheritdoc/>
    public override string ToString() => Pattern;

    // One scalar: a whole UTF-8 sequence (an invalid byte counts as one, as a decoder's U+FFFD would).
    private static int ScalarLength(ReadOnlySpan<byte> text)
    {
        System.Text.Rune.DecodeFromUtf8(text, out _, out int consumed);
        return Math.Max(consumed, 1);
    }

    // One scalar: a surrogate pair is one character; a lone surrogate counts alone.
    private static int ScalarLength(ReadOnlySpan<char> text, int index) =>
        char.IsHighSurrogate(text[index]) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]) ? 2 : 1;
}
