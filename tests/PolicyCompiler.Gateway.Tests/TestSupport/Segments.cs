using System.Buffers;
using System.Text;

namespace PolicyCompiler.Gateway.Tests.TestSupport;

/// <summary>Builds multi-segment sequences: the same bytes as the pipe would deliver them across buffer boundaries.</summary>
internal static class Segments
{
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        if (cuts.Length == 0)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        Segment? first = null, last = null;
        int start = 0;
        foreach (int cut in cuts.Append(bytes.Length))
        {
            // Copy each piece into its own array so no segment can be read past its end.
            byte[] piece = bytes[start..cut];
            var segment = new Segment(piece);
            if (first is null)
            {
                first = last = segment;
            }
            else
            {
                last = last!.Append(segment);
            }

            start = cut;
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    public static ReadOnlySequence<byte> Split(string text, params int[] cuts) => Split(Encoding.UTF8.GetBytes(text), cuts);

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
            return next;
        }
    }
}
