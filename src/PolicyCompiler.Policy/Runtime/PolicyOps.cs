using System.Text.RegularExpressions;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// The meaning of every condition operator, shared by the interpreter and the compiled evaluators
/// (generated code calls these same methods), so the two cannot disagree on a comparison.
/// Common rules: a <see cref="PolicyValueKind.Missing"/> value makes every test False except
/// <c>exists: false</c>; an <see cref="PolicyValueKind.Ambiguous"/> value makes every test Unknown;
/// a value of a type the operator does not take makes ordering and string tests Unknown
/// (eq/neq/in/not_in compare across types as simply unequal). Strings compare ordinally on their
/// decoded text. Numbers compare as IEEE doubles.
/// </summary>
public static class PolicyOps
{
    private static Exception Todo() => new NotImplementedException("contract: implemented by the runtime work (issue 2)");

    /// <summary><c>exists</c>: present (any kind, null included) equals <paramref name="expected"/>.</summary>
    public static Truth Exists(in PolicyValue value, bool expected) => throw Todo();

    /// <summary><c>eq</c> a string.</summary>
    public static Truth Eq(in PolicyValue value, ReadOnlySpan<byte> utf8) => throw Todo();
    /// <summary><c>eq</c> a number.</summary>
    public static Truth Eq(in PolicyValue value, double number) => throw Todo();
    /// <summary><c>eq</c> a boolean.</summary>
    public static Truth Eq(in PolicyValue value, bool boolean) => throw Todo();
    /// <summary><c>eq null</c>.</summary>
    public static Truth EqNull(in PolicyValue value) => throw Todo();

    /// <summary><c>neq</c>: Missing → False, Ambiguous → Unknown, else the negation of eq. Same for the overloads.</summary>
    public static Truth Neq(in PolicyValue value, ReadOnlySpan<byte> utf8) => throw Todo();
    /// <summary><c>neq</c> a number.</summary>
    public static Truth Neq(in PolicyValue value, double number) => throw Todo();
    /// <summary><c>neq</c> a boolean.</summary>
    public static Truth Neq(in PolicyValue value, bool boolean) => throw Todo();
    /// <summary><c>neq null</c>.</summary>
    public static Truth NeqNull(in PolicyValue value) => throw Todo();

    /// <summary><c>lt</c>: numbers only; other present kinds → Unknown.</summary>
    public static Truth Lt(in PolicyValue value, double number) => throw Todo();
    /// <summary><c>lte</c>.</summary>
    public static Truth Lte(in PolicyValue value, double number) => throw Todo();
    /// <summary><c>gt</c>.</summary>
    public static Truth Gt(in PolicyValue value, double number) => throw Todo();
    /// <summary><c>gte</c>.</summary>
    public static Truth Gte(in PolicyValue value, double number) => throw Todo();

    /// <summary><c>prefix</c>: strings only; other present kinds → Unknown.</summary>
    public static Truth Prefix(in PolicyValue value, ReadOnlySpan<byte> utf8) => throw Todo();
    /// <summary><c>suffix</c>.</summary>
    public static Truth Suffix(in PolicyValue value, ReadOnlySpan<byte> utf8) => throw Todo();

    /// <summary><c>contains</c> a string: substring of a string, or an element of an array equal to it; other kinds → Unknown.</summary>
    public static Truth Contains(in PolicyValue value, ReadOnlySpan<byte> utf8) => throw Todo();
    /// <summary><c>contains</c> a number: an array element equal to it; other kinds → Unknown.</summary>
    public static Truth Contains(in PolicyValue value, double number) => throw Todo();
    /// <summary><c>contains</c> a boolean: an array element equal to it.</summary>
    public static Truth Contains(in PolicyValue value, bool boolean) => throw Todo();
    /// <summary><c>contains null</c>: an array element that is null.</summary>
    public static Truth ContainsNull(in PolicyValue value) => throw Todo();

    /// <summary><c>glob</c>: strings only (see <see cref="GlobPattern"/>).</summary>
    public static Truth Glob(in PolicyValue value, GlobPattern pattern) => throw Todo();

    /// <summary><c>regex</c>: strings only; a match timeout → Unknown. The regex is built with <see cref="CreateRegex"/>.</summary>
    public static Truth Regex(in PolicyValue value, Regex regex) => throw Todo();

    /// <summary>Builds a policy regex: NonBacktracking (linear time), culture-invariant, with a match timeout.</summary>
    public static Regex CreateRegex(string pattern, TimeSpan timeout) => throw Todo();

    /// <summary>Kleene AND.</summary>
    public static Truth And(Truth left, Truth right) => throw Todo();
    /// <summary>Kleene OR.</summary>
    public static Truth Or(Truth left, Truth right) => throw Todo();
    /// <summary>Kleene NOT (Unknown stays Unknown).</summary>
    public static Truth Not(Truth value) => throw Todo();

    /// <summary>
    /// Whether a rule with <paramref name="action"/> fires on a condition result: an allow rule
    /// needs True; a deny or approve rule fires on True or Unknown (fail closed).
    /// </summary>
    public static bool Fires(Truth condition, ToolAction action) => throw Todo();
}

/// <summary>
/// A glob over decoded text: <c>*</c> matches any run of characters (including <c>/</c>),
/// <c>?</c> exactly one character (Unicode scalar), everything else itself (ordinal, case-sensitive).
/// Used for tool-name patterns and the <c>glob</c> operator.
/// </summary>
public sealed class GlobPattern
{
    /// <summary>Compiles <paramref name="pattern"/>.</summary>
    public GlobPattern(string pattern) { Pattern = pattern; }

    /// <summary>The pattern as written.</summary>
    public string Pattern { get; }

    /// <summary>Whether UTF-8 <paramref name="text"/> matches.</summary>
    public bool IsMatch(ReadOnlySpan<byte> text) => throw new NotImplementedException("contract: runtime work");

    /// <summary>Whether <paramref name="text"/> matches.</summary>
    public bool IsMatch(ReadOnlySpan<char> text) => throw new NotImplementedException("contract: runtime work");
}
