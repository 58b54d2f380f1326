using System.Collections.Generic;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Generators;

/// <summary>
/// Tool-name globs at build time: the same meaning as the runtime's GlobPattern (<c>*</c> any run,
/// <c>?</c> one Unicode scalar, everything else itself, ordinal), so the generator can resolve which
/// entry or hide pattern a literal tool name selects before the evaluator ever runs.
/// </summary>
internal static class Glob
{
    public static bool HasWildcards(string pattern) => pattern.IndexOf('*') >= 0 || pattern.IndexOf('?') >= 0;

    /// <summary>Whether <paramref name="text"/> matches <paramref name="pattern"/>.</summary>
    public static bool IsMatch(string pattern, string text)
    {
        int[] p = Scalars(pattern);
        int[] t = Scalars(text);
        int pi = 0, ti = 0, star = -1, resume = 0;
        while (ti < t.Length)
        {
            if (pi < p.Length && p[pi] == '*')
            {
                star = pi++;
                resume = ti;
            }
            else if (pi < p.Length && (p[pi] == '?' || p[pi] == t[ti]))
            {
                pi++;
                ti++;
            }
            else if (star >= 0)
            {
                // Let the last star take one more scalar and retry from there.
                pi = star + 1;
                ti = ++resume;
            }
            else
            {
                return false;
            }
        }

        while (pi < p.Length && p[pi] == '*')
        {
            pi++;
        }

        return pi == p.Length;
    }

    /// <summary>
    /// Spec step 2's order among matching patterns: more literal (non-wildcard) characters first,
    /// then fewer wildcards, then ordinal order of the key.
    /// </summary>
    public static int CompareSpecificity(ToolEntry a, ToolEntry b)
    {
        Count(a.Name, out int literalsA, out int wildcardsA);
        Count(b.Name, out int literalsB, out int wildcardsB);
        if (literalsA != literalsB)
        {
            return literalsB.CompareTo(literalsA);
        }

        if (wildcardsA != wildcardsB)
        {
            return wildcardsA.CompareTo(wildcardsB);
        }

        return string.CompareOrdinal(a.Name, b.Name);
    }

    private static void Count(string pattern, out int literals, out int wildcards)
    {
        literals = 0;
        wildcards = 0;
        foreach (char c in pattern)
        {
            if (c is '*' or '?')
            {
                wildcards++;
            }
            else
            {
                literals++;
            }
        }
    }

    private static int[] Scalars(string text)
    {
        var scalars = new List<int>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                scalars.Add(char.ConvertToUtf32(text[i], text[i + 1]));
                i++;
            }
            else
            {
                scalars.Add(text[i]);
            }
        }

        return scalars.ToArray();
    }
}
