using System;
using System.Text;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Tool-name patterns and JSON pointers, shared by the validator, the interpreter and the generator
/// so all three select entries identically. A pattern is a glob: <c>*</c> matches any run of
/// characters, <c>?</c> one Unicode scalar, everything else itself (ordinal).
/// </summary>
public static class PolicyPatterns
{
    /// <summary>
    /// The key of the layer entry: exactly <c>*</c>. It is never the selected entry; its rules and
    /// limits apply to every call (docs/policy-language.md, "The <c>*</c> layer"). Other keys with
    /// wildcards (<c>**</c>, <c>Delete*</c>) are ordinary pattern entries.
    /// </summary>
    public const string LayerKey = "*";

    /// <summary>Whether <paramref name="key"/> is the layer entry's key (exactly <c>*</c>).</summary>
    public static bool IsLayer(string key) => key == LayerKey;

    /// <summary>Whether <paramref name="key"/> holds a wildcard (<c>*</c> or <c>?</c>).</summary>
    public static bool IsPattern(string key) => key.IndexOf('*') >= 0 || key.IndexOf('?') >= 0;

    /// <summary>Non-wildcard Unicode scalars in <paramref name="pattern"/>.</summary>
    public static int LiteralCount(string pattern)
    {
        int count = 0;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '*' || c == '?') continue;
            if (char.IsHighSurrogate(c) && i + 1 < pattern.Length && char.IsLowSurrogate(pattern[i + 1])) i++;
            count++;
        }
        return count;
    }

    /// <summary>Wildcards in <paramref name="pattern"/>.</summary>
    public static int WildcardCount(string pattern)
    {
        int count = 0;
        foreach (char c in pattern)
        {
            if (c == '*' || c == '?') count++;
        }
        return count;
    }

    /// <summary>
    /// Orders patterns most specific first: more literal characters, then fewer wildcards, then
    /// ordinal order of the key (docs/policy-language.md, "Select the entry"). Negative when
    /// <paramref name="a"/> wins.
    /// </summary>
    public static int CompareSpecificity(string a, string b)
    {
        int c = LiteralCount(b).CompareTo(LiteralCount(a));
        if (c != 0) return c;
        c = WildcardCount(a).CompareTo(WildcardCount(b));
        return c != 0 ? c : string.CompareOrdinal(a, b);
    }

    /// <summary>Whether <paramref name="text"/> matches glob <paramref name="pattern"/>.</summary>
    public static bool Matches(string pattern, string text) => Match(pattern, 0, text, 0, patternAsText: false);

    /// <summary>
    /// A sufficient test that every name <paramref name="specific"/> matches, <paramref name="general"/>
    /// matches too: <paramref name="general"/> matches <paramref name="specific"/> read as text, where
    /// its <c>*</c> may cover the other's wildcards and its <c>?</c> the other's <c>?</c>. Used for
    /// "never selected" warnings, which must never be false alarms; it may miss exotic cases.
    /// </summary>
    public static bool Covers(string general, string specific) => Match(general, 0, specific, 0, patternAsText: true);

    // Classic two-pointer glob matching with backtracking to the last '*': linear in practice and
    // without recursion, so a hostile pattern cannot blow the stack of the compiler.
    private static bool Match(string pattern, int p, string text, int t, bool patternAsText)
    {
        int starP = -1, starT = -1;
        while (t < text.Length)
        {
            int tLen = ScalarLength(text, t);
            if (p < pattern.Length && pattern[p] == '*')
            {
                starP = p++;
                starT = t;
                continue;
            }
            if (p < pattern.Length)
            {
                int pLen = ScalarLength(pattern, p);
                bool textIsStar = patternAsText && text[t] == '*';
                bool one = pattern[p] == '?'
                    ? !textIsStar
                    : pLen == tLen && string.CompareOrdinal(pattern, p, text, t, pLen) == 0 && !(patternAsText && (text[t] == '?' || textIsStar));
                if (one)
                {
                    p += pLen;
                    t += tLen;
                    continue;
                }
            }
            if (starP < 0) return false;
            p = starP + 1;
            starT += ScalarLength(text, starT);
            t = starT;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }

    private static int ScalarLength(string s, int i) =>
        char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;

    /// <summary>Escapes one JSON pointer token (RFC 6901): <c>~</c> → <c>~0</c>, <c>/</c> → <c>~1</c>.</summary>
    public static string EscapePointerToken(string token)
    {
        if (token.IndexOf('~') < 0 && token.IndexOf('/') < 0) return token;
        var text = new StringBuilder(token.Length + 4);
        foreach (char c in token)
        {
            if (c == '~') text.Append("~0");
            else if (c == '/') text.Append("~1");
            else text.Append(c);
        }
        return text.ToString();
    }

    /// <summary>The pointer of the tool entry keyed <paramref name="key"/>: <c>/tools/KEY</c>, escaped.</summary>
    public static string EntryPointer(string key) => "/tools/" + EscapePointerToken(key);
}
