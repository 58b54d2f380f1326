using System.Buffers;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text.Unicode;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// The meaning of every condition operator, shared by the interpreter and the compiled evaluators
/// (generated code calls these same methods), so the two cannot disagree on a comparison.
/// Common rules: a <see cref="PolicyValueKind.Missing"/> value makes every test False except
/// <c>exists: false</c>; an <see cref="PolicyValueKind.Ambiguous"/> value makes every test Unknown;
/// a value of a type the operator does not take makes ordering and string tests Unknown
/// (eq/neq/in/not_in compare across types as simply unequal). Strings compare ordinally on their
/// decoded text. Numbers compare as IEEE doubles. A string that cannot be decoded (an unpaired
/// surrogate escape, invalid UTF-8) makes every test on it Unknown.
/// Nothing here allocates: escaped strings decode into stack or pooled buffers.
/// </summary>
public static class PolicyOps
{
    /// <summary><c>exists</c>: present (any kind, null included) equals <paramref name="expected"/>.</summary>
    public static Truth Exists(in PolicyValue value, bool expected) => value.Kind switch
    {
        PolicyValueKind.Missing => ToTruth(!expected),
        PolicyValueKind.Ambiguous => Truth.Unknown,
        _ => ToTruth(expected),
    };

    /// <summary><c>eq</c> a string.</summary>
    public static Truth Eq(in PolicyValue value, ReadOnlySpan<byte> utf8)
    {
        if (value.Kind != PolicyValueKind.String) return EqAcrossKinds(value.Kind);
        return CompareString(value, utf8, StringTest.Equals);
    }

    /// <summary><c>eq</c> a number.</summary>
    public static Truth Eq(in PolicyValue value, double number)
    {
        if (value.Kind != PolicyValueKind.Number) return EqAcrossKinds(value.Kind);
        return JsonText.TryGetNumber(value, out double actual) ? ToTruth(actual == number) : Truth.Unknown;
    }

    /// <summary><c>eq</c> a boolean.</summary>
    public static Truth Eq(in PolicyValue value, bool boolean) => value.Kind switch
    {
        PolicyValueKind.True => ToTruth(boolean),
        PolicyValueKind.False => ToTruth(!boolean),
        var kind => EqAcrossKinds(kind),
    };

    /// <summary><c>eq null</c>.</summary>
    public static Truth EqNull(in PolicyValue value) =>
        value.Kind == PolicyValueKind.Null ? Truth.True : EqAcrossKinds(value.Kind);

    /// <summary><c>neq</c>: Missing → False, Ambiguous → Unknown, else the negation of eq. Same for the overloads.</summary>
    public static Truth Neq(in PolicyValue value, ReadOnlySpan<byte> utf8) =>
        value.Kind == PolicyValueKind.Missing ? Truth.False : Not(Eq(value, utf8));

    /// <summary><c>neq</c> a number.</summary>
    public static Truth Neq(in PolicyValue value, double number) =>
        value.Kind == PolicyValueKind.Missing ? Truth.False : Not(Eq(value, number));

    /// <summary><c>neq</c> a boolean.</summary>
    public static Truth Neq(in PolicyValue value, bool boolean) =>
        value.Kind == PolicyValueKind.Missing ? Truth.False : Not(Eq(value, boolean));

    /// <summary><c>neq null</c>.</summary>
    public static Truth NeqNull(in PolicyValue value) =>
        value.Kind == PolicyValueKind.Missing ? Truth.False : Not(EqNull(value));

    /// <summary><c>lt</c>: numbers only; other present kinds → Unknown.</summary>
    public static Truth Lt(in PolicyValue value, double number) =>
        TryNumber(value, out double actual, out Truth otherwise) ? ToTruth(actual < number) : otherwise;

    /// <summary><c>lte</c>.</summary>
    public static Truth Lte(in PolicyValue value, double number) =>
        TryNumber(value, out double actual, out Truth otherwise) ? ToTruth(actual <= number) : otherwise;

    /// <summary><c>gt</c>.</summary>
    public static Truth Gt(in PolicyValue value, double number) =>
        TryNumber(value, out double actual, out Truth otherwise) ? ToTruth(actual > number) : otherwise;

    /// <summary><c>gte</c>.</summary>
    public static Truth Gte(in PolicyValue value, double number) =>
        TryNumber(value, out double actual, out Truth otherwise) ? ToTruth(actual >= number) : otherwise;

    /// <summary><c>prefix</c>: strings only; other present kinds → Unknown.</summary>
    public static Truth Prefix(in PolicyValue value, ReadOnlySpan<byte> utf8) =>
        value.Kind == PolicyValueKind.String ? CompareString(value, utf8, StringTest.Prefix) : NotAString(value.Kind);

    /// <summary><c>suffix</c>.</summary>
    public static Truth Suffix(in PolicyValue value, ReadOnlySpan<byte> utf8) =>
        value.Kind == PolicyValueKind.String ? CompareString(value, utf8, StringTest.Suffix) : NotAString(value.Kind);

    /// <summary><c>contains</c> a string: substring of a string, or an element of an array equal to it; other kinds → Unknown.</summary>
    public static Truth Contains(in PolicyValue value, ReadOnlySpan<byte> utf8) => value.Kind switch
    {
        PolicyValueKind.String => CompareString(value, utf8, StringTest.Contains),
        PolicyValueKind.Array => ArrayContains(value.Raw, ElementTest.String, utf8, 0, false),
        var kind => NotAString(kind),
    };

    /// <summary><c>contains</c> a number: an array element equal to it; other kinds → Unknown.</summary>
    public static Truth Contains(in PolicyValue value, double number) =>
        value.Kind == PolicyValueKind.Array ? ArrayContains(value.Raw, ElementTest.Number, default, number, false) : NotAString(value.Kind);

    /// <summary><c>contains</c> a boolean: an array element equal to it.</summary>
    public static Truth Contains(in PolicyValue value, bool boolean) =>
        value.Kind == PolicyValueKind.Array ? ArrayContains(value.Raw, ElementTest.Boolean, default, 0, boolean) : NotAString(value.Kind);

    /// <summary><c>contains null</c>: an array element that is null.</summary>
    public static Truth ContainsNull(in PolicyValue value) =>
        value.Kind == PolicyValueKind.Array ? ArrayContains(value.Raw, ElementTest.Null, default, 0, false) : NotAString(value.Kind);

    /// <summary><c>glob</c>: strings only (see <see cref="GlobPattern"/>).</summary>
    public static Truth Glob(in PolicyValue value, GlobPattern pattern)
    {
        if (value.Kind != PolicyValueKind.String) return NotAString(value.Kind);
        if (value.Text is { } text) return ToTruth(pattern.IsMatch(text.AsSpan()));
        byte[]? rented = null;
        try
        {
            return JsonText.TryGetUtf8(value, stackalloc byte[JsonText.StackBytes], ref rented, out ReadOnlySpan<byte> utf8)
                ? ToTruth(pattern.IsMatch(utf8))
                : Truth.Unknown;
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary><c>regex</c>: strings only; a match timeout → Unknown. The regex is built with <see cref="CreateRegex"/>.</summary>
    public static Truth Regex(in PolicyValue value, Regex regex)
    {
        if (value.Kind != PolicyValueKind.String) return NotAString(value.Kind);
        if (value.Text is { } text) return IsMatch(regex, text.AsSpan());

        byte[]? rentedBytes = null;
        char[]? rentedChars = null;
        try
        {
            if (!JsonText.TryGetUtf8(value, stackalloc byte[JsonText.StackBytes], ref rentedBytes, out ReadOnlySpan<byte> utf8))
            {
                return Truth.Unknown;
            }
            // UTF-16 never needs more code units than UTF-8 has bytes.
            Span<char> chars = utf8.Length <= JsonText.StackBytes
                ? stackalloc char[JsonText.StackBytes]
                : (rentedChars = ArrayPool<char>.Shared.Rent(utf8.Length));
            if (Utf8.ToUtf16(utf8, chars, out _, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
            {
                return Truth.Unknown;
            }
            return IsMatch(regex, chars[..written]);
        }
        finally
        {
            if (rentedBytes is not null) ArrayPool<byte>.Shared.Return(rentedBytes);
            if (rentedChars is not null) ArrayPool<char>.Shared.Return(rentedChars);
        }
    }

    /// <summary>Builds a policy regex: NonBacktracking (linear time), culture-invariant, with a match timeout.</summary>
    public static Regex CreateRegex(string pattern, TimeSpan timeout) =>
        new(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, timeout);

    /// <summary>Kleene AND.</summary>
    public static Truth And(Truth left, Truth right)
    {
        if (left == Truth.False || right == Truth.False) return Truth.False;
        return left == Truth.True && right == Truth.True ? Truth.True : Truth.Unknown;
    }

    /// <summary>Kleene OR.</summary>
    public static Truth Or(Truth left, Truth right)
    {
        if (left == Truth.True || right == Truth.True) return Truth.True;
        return left == Truth.False && right == Truth.False ? Truth.False : Truth.Unknown;
    }

    /// <summary>Kleene NOT (Unknown stays Unknown).</summary>
    public static Truth Not(Truth value) => value switch
    {
        Truth.True => Truth.False,
        Truth.False => Truth.True,
        _ => Truth.Unknown,
    };

    /// <summary>
    /// Whether a rule with <paramref name="action"/> fires on a condition result: an allow rule
    /// needs True; a deny or approve rule fires on True or Unknown (fail closed).
    /// </summary>
    public static bool Fires(Truth condition, ToolAction action) =>
        action == ToolAction.Allow ? condition == Truth.True : condition != Truth.False;

    private static Truth ToTruth(bool value) => value ? Truth.True : Truth.False;

    // eq across kinds is simply unequal; only the two special kinds differ.
    private static Truth EqAcrossKinds(PolicyValueKind kind) =>
        kind == PolicyValueKind.Ambiguous ? Truth.Unknown : Truth.False;

    // A missing value fails every test; anything else of the wrong kind cannot be decided.
    private static Truth NotAString(PolicyValueKind kind) =>
        kind == PolicyValueKind.Missing ? Truth.False : Truth.Unknown;

    private static bool TryNumber(in PolicyValue value, out double number, out Truth otherwise)
    {
        number = 0;
        if (value.Kind == PolicyValueKind.Number && JsonText.TryGetNumber(value, out number))
        {
            otherwise = default;
            return true;
        }
        otherwise = NotAString(value.Kind);
        return false;
    }

    private static Truth IsMatch(Regex regex, ReadOnlySpan<char> text)
    {
        try
        {
            return ToTruth(regex.IsMatch(text));
        }
        catch (RegexMatchTimeoutException)
        {
            // The agent controls the text; a match that runs too long cannot be trusted either way.
            return Truth.Unknown;
        }
    }

    private enum StringTest : byte { Equals, Prefix, Suffix, Contains }

    /// <summary>
    /// Whether <paramref name="value"/> is a string whose raw bytes are its text: read from the
    /// arguments (not a .NET string), without escapes, valid UTF-8. Every string test on such a value
    /// compares <see cref="PolicyValue.Raw"/> directly (what <see cref="Eq(in PolicyValue, ReadOnlySpan{byte})"/>
    /// does after the same checks), so generated code checks this once per argument and then compares
    /// bytes with its constants, instead of re-validating the text for each constant.
    /// </summary>
    public static bool IsPlainString(in PolicyValue value) =>
        value.Kind == PolicyValueKind.String && value.Text is null && !value.HasEscapes && Utf8.IsValid(value.Raw);

    private static Truth CompareString(in PolicyValue value, ReadOnlySpan<byte> operand, StringTest test)
    {
        // The common case, an argument string without escapes, needs no decoding buffer.
        if (value.Text is null && !value.HasEscapes)
        {
            return Utf8.IsValid(value.Raw) ? ToTruth(Compare(value.Raw, operand, test)) : Truth.Unknown;
        }

        return CompareDecoded(value, operand, test);
    }

    private static bool Compare(ReadOnlySpan<byte> text, ReadOnlySpan<byte> operand, StringTest test) => test switch
    {
        StringTest.Equals => text.SequenceEqual(operand),
        StringTest.Prefix => text.StartsWith(operand),
        StringTest.Suffix => text.EndsWith(operand),
        // UTF-8 is self-synchronising: a byte substring of valid UTF-8 is a character substring.
        _ => text.IndexOf(operand) >= 0,
    };

    private static Truth CompareDecoded(in PolicyValue value, ReadOnlySpan<byte> operand, StringTest test)
    {
        byte[]? rented = null;
        try
        {
            if (!JsonText.TryGetUtf8(value, stackalloc byte[JsonText.StackBytes], ref rented, out ReadOnlySpan<byte> text))
            {
                return Truth.Unknown;
            }
            return ToTruth(Compare(text, operand, test));
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private enum ElementTest : byte { String, Number, Boolean, Null }

    private static Truth ArrayContains(ReadOnlySpan<byte> arrayJson, ElementTest test, ReadOnlySpan<byte> text, double number, bool boolean)
    {
        // The array was validated when it was located, so reading it again cannot fail.
        var reader = new Utf8JsonReader(arrayJson, new JsonReaderOptions { MaxDepth = 256 });
        reader.Read(); // StartArray
        bool undecidable = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var element = new PolicyValue
            {
                Kind = reader.TokenType switch
                {
                    JsonTokenType.String => PolicyValueKind.String,
                    JsonTokenType.Number => PolicyValueKind.Number,
                    JsonTokenType.True => PolicyValueKind.True,
                    JsonTokenType.False => PolicyValueKind.False,
                    JsonTokenType.Null => PolicyValueKind.Null,
                    _ => PolicyValueKind.Object,
                },
                Raw = reader.ValueSpan,
                HasEscapes = reader.ValueIsEscaped,
            };
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
            {
                reader.Skip();
                continue;
            }
            Truth equal = test switch
            {
                ElementTest.String => Eq(element, text),
                ElementTest.Number => Eq(element, number),
                ElementTest.Boolean => Eq(element, boolean),
                _ => EqNull(element),
            };
            if (equal == Truth.True) return Truth.True;
            undecidable |= equal == Truth.Unknown;
        }
        // An element we could not decode might have been the one; say so rather than False.
        return undecidable ? Truth.Unknown : Truth.False;
    }
}
