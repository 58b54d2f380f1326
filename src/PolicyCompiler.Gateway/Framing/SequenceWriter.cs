using System.Buffers;

namespace PolicyCompiler.Gateway.Framing;

/// <summary>Copies byte sequences to a writer segment by segment: forwarding never gathers a message into one array.</summary>
internal static class SequenceWriter
{
    /// <summary>Writes every segment of <paramref name="source"/>.</summary>
    public static void Write(IBufferWriter<byte> output, in ReadOnlySequence<byte> source)
    {
        if (source.IsSingleSegment)
        {
            output.Write(source.FirstSpan);
            return;
        }

        foreach (ReadOnlyMemory<byte> segment in source)
        {
            output.Write(segment.Span);
        }
    }

    /// <summary>Writes <paramref name="message"/> and the newline that ends it on the wire.</summary>
    public static void WriteLine(IBufferWriter<byte> output, in ReadOnlySequence<byte> message)
    {
        Write(output, message);
        output.GetSpan(1)[0] = (byte)'\n';
        output.Advance(1);
    }
}
