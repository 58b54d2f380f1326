using System;
using System.Collections.Generic;
using System.Text;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Maps byte offsets in a UTF-8 policy file to 1-based lines and columns. Columns count UTF-16
/// code units from the start of the line, as Roslyn and editors do, so a diagnostic underlines the
/// same character in the IDE and in <c>policyc check</c>. Line breaks are <c>\n</c>, <c>\r\n</c>
/// and a lone <c>\r</c> (Roslyn's set, minus the Unicode separators JSON cannot carry outside strings).
/// </summary>
internal sealed class PolicySourceText
{
    private readonly byte[] _utf8;
    private readonly List<int> _lineStarts = new() { 0 };

    private readonly int _textStart;

    /// <summary>Maps <paramref name="utf8"/>, whose text starts at <paramref name="textStart"/> (past a BOM, which is no column).</summary>
    public PolicySourceText(byte[] utf8, int textStart)
    {
        _utf8 = utf8;
        _textStart = textStart;
        for (int i = 0; i < utf8.Length; i++)
        {
            byte b = utf8[i];
            if (b == (byte)'\n')
            {
                _lineStarts.Add(i + 1);
            }
            else if (b == (byte)'\r')
            {
                if (i + 1 < utf8.Length && utf8[i + 1] == (byte)'\n') i++;
                _lineStarts.Add(i + 1);
            }
        }
    }

    /// <summary>The file's bytes.</summary>
    public byte[] Utf8 => _utf8;

    /// <summary>The 1-based line and column of byte <paramref name="offset"/>.</summary>
    public SourcePosition GetPosition(int offset)
    {
        if (offset < 0) offset = 0;
        if (offset > _utf8.Length) offset = _utf8.Length;
        int line = _lineStarts.BinarySearch(offset);
        if (line < 0) line = ~line - 1;
        int start = Math.Max(_lineStarts[line], Math.Min(_textStart, offset));
        int column = CountUtf16(start, offset - start);
        return new SourcePosition(line + 1, column + 1);
    }

    /// <summary>
    /// Converts a position reported by <c>Utf8JsonReader</c> (0-based line counted by <c>\n</c> only,
    /// byte position in that line) to a byte offset.
    /// </summary>
    public int OffsetFromReaderPosition(long lineNumber, long bytePositionInLine)
    {
        int offset = 0;
        for (long line = 0; line < lineNumber && offset < _utf8.Length; offset++)
        {
            if (_utf8[offset] == (byte)'\n') line++;
        }
        long result = offset + bytePositionInLine;
        return result > _utf8.Length ? _utf8.Length : (int)result;
    }

    private int CountUtf16(int start, int byteCount)
    {
        // Invalid UTF-8 is reported separately; a lenient count keeps the column close to the truth.
        return byteCount <= 0 ? 0 : Encoding.UTF8.GetCharCount(_utf8, start, byteCount);
    }
}
