using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Unicode;

namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Turns a <see cref="PolicyValue"/> string into its decoded text without allocating: JSON escapes
/// are undone into a caller-supplied (stack) buffer, or a pooled one when the text is long.
/// </summary>
internal static class JsonText
{
    /// <summary>Strings up to this many bytes decode on the stack.</summary>
    public const int StackBytes = 256;

    /// <summary>
    /// Gets the decoded UTF-8 of a string value. Returns false when the text cannot be decoded
    /// (a lone surrogate escape or invalid UTF-8): operators then answer Unknown, because the
    /// server may read such a string in a way the policy cannot predict. The caller returns
    /// <paramref name="rented"/> to <see cref="ArrayPool{T}.Shared"/> when it is not null.
    /// </summary>
    public static bool TryGetUtf8(in PolicyValue value, Span<byte> scratch, ref byte[]? rented, out ReadOnlySpan<byte> utf8)
    {
        if (value.Text is { } text)
        {
            int max = Encoding.UTF8.GetMaxByteCount(text.Length);
            Span<byte> destination = max <= scratch.Length ? scratch : (rented = ArrayPool<byte>.Shared.Rent(max));
            // Grants and sessions come from .NET; a lone surrogate would be replaced by U+FFFD here,
            // so refuse it instead of comparing a different text.
            if (Utf8.FromUtf16(text, destination, out _, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
            {
                utf8 = default;
                return false;
            }
            utf8 = destination[..written];
            return true;
        }

        if (!value.HasEscapes)
        {
            utf8 = value.Raw;
            return Utf8.IsValid(utf8);
        }

        // Unescaping never lengthens the text (\uXXXX is 6 bytes for at most 3), so Raw.Length suffices.
        Span<byte> buffer = value.Raw.Length <= scratch.Length ? scratch : (rented = ArrayPool<byte>.Shared.Rent(value.Raw.Length));
        if (!TryUnescape(value.Raw, buffer, out int length) || !Utf8.IsValid(buffer[..length]))
        {
            utf8 = default;
            return false;
        }
        utf8 = buffer[..length];
        return true;
    }

    /// <summary>Undoes JSON string escapes (RFC 8259 §7). False on a malformed escape or an unpaired surrogate.</summary>
    public static bool TryUnescape(ReadOnlySpan<byte> escaped, Span<byte> destination, out int written)
    {
        written = 0;
        int i = 0;
        while (i < escaped.Length)
        {
            int backslash = escaped[i..].IndexOf((byte)'\\');
            if (backslash < 0)
            {
                escaped[i..].CopyTo(destination[written..]);
                written += escaped.Length - i;
                return true;
            }
            escaped.Slice(i, backslash).CopyTo(destination[written..]);
            written += backslash;
            i += backslash;
            if (i + 1 >= escaped.Length) return false;
            byte e = escaped[i + 1];
            i += 2;
            byte simple = e switch
            {
                (byte)'"' => (byte)'"',
                (byte)'\\' => (byte)'\\',
                (byte)'/' => (byte)'/',
                (byte)'b' => (byte)'\b',
                (byte)'f' => (byte)'\f',
                (byte)'n' => (byte)'\n',
                (byte)'r' => (byte)'\r',
                (byte)'t' => (byte)'\t',
                _ => 0,
            };
            if (simple != 0)
            {
                destination[written++] = simple;
                continue;
            }
            if (e != (byte)'u' || !TryReadHex4(escaped, i, out int unit)) return false;
            i += 4;
            int scalar = unit;
            if (char.IsHighSurrogate((char)unit))
            {
                // A high surrogate must be followed by an escaped low one to form a scalar.
                if (i + 6 > escaped.Length || escaped[i] != (byte)'\\' || escaped[i + 1] != (byte)'u'
                    || !TryReadHex4(escaped, i + 2, out int low) || !char.IsLowSurrogate((char)low))
                {
                    return false;
                }
                i += 6;
                scalar = char.ConvertToUtf32((char)unit, (char)low);
            }
            else if (char.IsLowSurrogate((char)unit))
            {
                return false;
            }
            written += new Rune(scalar).EncodeToUtf8(destination[written..]);
        }
        return true;
    }

    private static bool TryReadHex4(ReadOnlySpan<byte> text, int start, out int value)
    {
        value = 0;
        return start + 4 <= text.Length
            && Utf8Parser.TryParse(text.Slice(start, 4), out value, out int consumed, 'X')
            && consumed == 4;
    }

    /// <summary>Parses a JSON number literal as an IEEE double.</summary>
    public static bool TryGetNumber(in PolicyValue value, out double number)
        => double.TryParse(value.Raw, NumberStyles.Float, CultureInfo.InvariantCulture, out number);
}
