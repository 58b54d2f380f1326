using System.Buffers;

namespace PolicyCompiler.Benchmarks.Framing;

/// <summary>Builds the <see cref="ReadOnlySequence{T}"/> shapes a <c>PipeReader</c> hands the gateway.</summary>
public static class Segments
{
    /// <summary>One segment holding all of <paramref name="bytes"/>.</summary>
    public static ReadOnlySequence<byte> Contiguous(byte[] bytes) => new(bytes);

    /// <summary>
    /// <paramref name="bytes"/> split into segments at <paramref name="cuts"/> (ascending offsets), each
    /// segment its own array, as a pipe delivers a message that straddles its buffer blocks.
    /// </summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        Segment first = new(bytes.AsMemory(0, cuts[0]).ToArray(), 0);
        Segment last = first;
        for (int i = 0; i < cuts.Length; i++)
        {
            int start = cuts[i];
            int end = i + 1 < cuts.Length ? cuts[i + 1] : bytes.Length;
            last = last.Append(bytes.AsMemory(start, end - start).ToArray());
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>Offset of the first occurrence of <paramref name="needle"/> in <paramref name="bytes"/> (it must occur).</summary>
    public static int IndexOf(byte[] bytes, ReadOnlySpan<byte> needle)
    {
        int index = bytes.AsSpan().IndexOf(needle);
        if (index < 0)
        {
            throw new ArgumentException("the text does not occur in the message", nameof(needle));
        }

        return index;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
