using System.Buffers;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// Splits a <c>text/event-stream</c> (HTML Living Standard §9.2.6 "Interpreting an event stream")
/// into events, and reads an event's <c>data</c>. Lines end with CRLF, LF or CR; an event ends with
/// an empty line. The gateway forwards every event byte-for-byte unless its data must be rewritten
/// (a filtered tools/list result), so it only needs the event's extent and its data lines.
/// </summary>
internal static class SseEventFramer
{
    /// <summary>
    /// Takes the next complete event (its bytes up to and including the blank line) off the front of
    /// <paramref name="buffer"/>; false when the buffer ends inside an event.
    /// </summary>
    public static bool TryReadEvent(ref ReadOnlySequence<byte> buffer, bool isCompleted, out ReadOnlySequence<byte> sseEvent)
    {
        var reader = new SequenceReader<byte>(buffer);
        while (true)
        {
            long lineStart = reader.Consumed;
            if (!reader.TryAdvanceToAny("\r\n"u8, advancePastDelimiter: false))
            {
                sseEvent = default;
                return false;
            }

            bool emptyLine = reader.Consumed == lineStart;
            reader.TryRead(out byte terminator);
            if (terminator == (byte)'\r')
            {
                if (reader.End && !isCompleted)
                {
                    // A CR at the end of what arrived: the LF of a CRLF may follow.
                    sseEvent = default;
                    return false;
                }

                if (reader.TryPeek(out byte next) && next == (byte)'\n')
                {
                    reader.Advance(1);
                }
            }

            if (emptyLine)
            {
                sseEvent = buffer.Slice(0, reader.Position);
                buffer = buffer.Slice(reader.Position);
                return true;
            }
        }
    }

    /// <summary>
    /// Reads an event's fields: how many <c>data</c> lines it has, the first one's value (a slice of the
    /// event), and whether an <c>event</c> field names a type other than <c>message</c>.
    /// </summary>
    public static int ReadData(in ReadOnlySequence<byte> sseEvent, IBufferWriter<byte> joined, out ReadOnlySequence<byte> firstData, out bool otherType)
    {
        var reader = new SequenceReader<byte>(sseEvent);
        int dataLines = 0;
        firstData = default;
        otherType = false;
        while (!reader.End)
        {
            if (!reader.TryReadToAny(out ReadOnlySequence<byte> line, "\r\n"u8, advancePastDelimiter: false))
            {
                break;
            }

            reader.TryRead(out byte terminator);
            if (terminator == (byte)'\r' && reader.TryPeek(out byte next) && next == (byte)'\n')
            {
                reader.Advance(1);
            }

            if (line.IsEmpty)
            {
                break;
            }

            ReadOnlySequence<byte> value = FieldValue(line, out bool isData, out bool isEvent);
            if (isData)
            {
                if (dataLines == 0)
                {
                    firstData = value;
                }
                else
                {
                    // Several data lines are one payload joined by LF (the standard's "data buffer").
                    if (dataLines == 1)
                    {
                        Write(joined, firstData);
                    }

                    joined.GetSpan(1)[0] = (byte)'\n';
                    joined.Advance(1);
                    Write(joined, value);
                }

                dataLines++;
            }
            else if (isEvent && !SequenceEquals(value, "message"u8))
            {
                otherType = true;
            }
        }

        return dataLines;
    }

    /// <summary>Writes an event's non-data lines (id, event, retry, comments) verbatim, for an event whose data is replaced.</summary>
    public static void WriteNonDataLines(in ReadOnlySequence<byte> sseEvent, IBufferWriter<byte> output)
    {
        var reader = new SequenceReader<byte>(sseEvent);
        while (!reader.End)
        {
            if (!reader.TryReadToAny(out ReadOnlySequence<byte> line, "\r\n"u8, advancePastDelimiter: false))
            {
                break;
            }

            reader.TryRead(out byte terminator);
            if (terminator == (byte)'\r' && reader.TryPeek(out byte next) && next == (byte)'\n')
            {
                reader.Advance(1);
            }

            if (line.IsEmpty)
            {
                break;
            }

            FieldValue(line, out bool isData, out _);
            if (!isData)
            {
                Write(output, line);
                output.GetSpan(1)[0] = (byte)'\n';
                output.Advance(1);
            }
        }
    }

    private static ReadOnlySequence<byte> FieldValue(in ReadOnlySequence<byte> line, out bool isData, out bool isEvent)
    {
        // "field: value" or "field:value" or "field" (empty value); a line starting with ':' is a comment.
        SequencePosition? colon = line.PositionOf((byte)':');
        ReadOnlySequence<byte> name = colon is null ? line : line.Slice(0, colon.Value);
        isData = SequenceEquals(name, "data"u8);
        isEvent = SequenceEquals(name, "event"u8);
        if (colon is null)
        {
            return default;
        }

        ReadOnlySequence<byte> value = line.Slice(line.GetPosition(1, colon.Value));
        if (!value.IsEmpty && value.FirstSpan[0] == (byte)' ')
        {
            value = value.Slice(1);
        }

        return value;
    }

    private static bool SequenceEquals(in ReadOnlySequence<byte> value, ReadOnlySpan<byte> text)
    {
        if (value.Length != text.Length)
        {
            return false;
        }

        if (value.IsSingleSegment)
        {
            return value.FirstSpan.SequenceEqual(text);
        }

        Span<byte> copy = stackalloc byte[text.Length];
        value.CopyTo(copy);
        return copy.SequenceEqual(text);
    }

    private static void Write(IBufferWriter<byte> output, in ReadOnlySequence<byte> source)
    {
        foreach (ReadOnlyMemory<byte> segment in source)
        {
            output.Write(segment.Span);
        }
    }
}
