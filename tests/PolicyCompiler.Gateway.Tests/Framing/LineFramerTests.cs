using System.Buffers;
using System.Text;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;

namespace PolicyCompiler.Gateway.Tests.Framing;

public class LineFramerTests
{
    private const string Stream = "{\"id\":1,\"method\":\"ping\"}\n{\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"é\"}}\r\n\n{\"method\":\"x\"}";

    [Fact]
    public void EveryByteBoundary_YieldsTheSameLines()
    {
        byte[] bytes = Encoding.UTF8.GetBytes(Stream);
        List<string> expected = Frame(new ReadOnlySequence<byte>(bytes), 1024);
        Assert.Equal(["{\"id\":1,\"method\":\"ping\"}", "{\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"é\"}}\r", "", "{\"method\":\"x\"}"], expected);
        for (int cut = 1; cut < bytes.Length; cut++)
        {
            Assert.Equal(expected, Frame(Segments.Split(bytes, cut), 1024));
        }
    }

    [Fact]
    public void ByteByByteDelivery_YieldsTheSameLines()
    {
        // Feed the framer one byte at a time, as a slow pipe would: state carries across reads.
        byte[] bytes = Encoding.UTF8.GetBytes(Stream);
        var framer = new LineFramer(1024);
        var lines = new List<string>();
        var pending = new List<byte>();
        for (int i = 0; i < bytes.Length; i++)
        {
            pending.Add(bytes[i]);
            bool last = i == bytes.Length - 1;
            var buffer = new ReadOnlySequence<byte>(pending.ToArray());
            while (framer.TryReadMessage(ref buffer, last, out ReadOnlySequence<byte> message) == FrameStatus.Message)
            {
                lines.Add(Encoding.UTF8.GetString(message));
            }

            pending = [.. buffer.ToArray()];
        }

        Assert.Equal(Frame(new ReadOnlySequence<byte>(bytes), 1024), lines);
    }

    [Fact]
    public void RandomStreams_FrameAlike_InOneSegmentOrMany_WholeOrInPieces()
    {
        // Lines around the limit (under, at, over) and blank ones; delivered whole or in random reads, each read
        // as one array (as the file-descriptor reader hands them over) or cut into segments (as System.IO.Pipelines does).
        var random = new Random(4242);
        for (int round = 0; round < 400; round++)
        {
            int limit = random.Next(1, 40);
            var text = new StringBuilder();
            int lines = random.Next(1, 12);
            for (int i = 0; i < lines; i++)
            {
                text.Append('x', Math.Max(0, limit + random.Next(-3, 4) - (random.Next(4) == 0 ? limit : 0)));
                text.Append('\n');
            }

            if (random.Next(2) == 0)
            {
                text.Append('y', random.Next(1, limit + 3)); // an unterminated last line
            }

            byte[] bytes = Encoding.UTF8.GetBytes(text.ToString());
            List<string> whole = FrameWithStatus(bytes, limit, [bytes.Length], segmented: false);
            int[] reads = RandomCuts(random, bytes.Length);
            Assert.Equal(whole, FrameWithStatus(bytes, limit, reads, segmented: false));
            Assert.Equal(whole, FrameWithStatus(bytes, limit, reads, segmented: true));
            Assert.Equal(whole, FrameWithStatus(bytes, limit, [bytes.Length], segmented: true));
        }
    }

    private static int[] RandomCuts(Random random, int length)
    {
        var cuts = new SortedSet<int> { length };
        for (int i = random.Next(0, 6); i > 0 && length > 1; i--)
        {
            cuts.Add(random.Next(1, length));
        }

        return [.. cuts];
    }

    /// <summary>
    /// Frames <paramref name="bytes"/> arriving in reads ending at <paramref name="readEnds"/>; what is left unconsumed
    /// is carried into the next read, as a pipe does. Each frame as "status:text".
    /// </summary>
    private static List<string> FrameWithStatus(byte[] bytes, long limit, int[] readEnds, bool segmented)
    {
        var framer = new LineFramer(limit);
        var frames = new List<string>();
        byte[] pending = [];
        int start = 0;
        foreach (int end in readEnds)
        {
            byte[] available = [.. pending, .. bytes[start..end]];
            start = end;
            bool last = end == bytes.Length;
            ReadOnlySequence<byte> buffer = segmented && available.Length > 1
                ? Segments.Split(available, available.Length / 2)
                : new ReadOnlySequence<byte>(available);
            FrameStatus status;
            while ((status = framer.TryReadMessage(ref buffer, last, out ReadOnlySequence<byte> message)) != FrameStatus.Incomplete)
            {
                frames.Add(status + ":" + Encoding.UTF8.GetString(message));
            }

            pending = buffer.ToArray();
        }

        return frames;
    }

    [Fact]
    public void OversizedLine_IsReportedOnceThenTheNextLineIsRead()
    {
        string big = "{\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":{\"a\":\"" + new string('a', 500) + "\"}}}";
        string text = big + "\n{\"id\":10,\"method\":\"ping\"}\n";
        for (int cut = 1; cut < text.Length; cut += 7)
        {
            var framer = new LineFramer(64);
            var buffer = Segments.Split(text, cut);
            Assert.Equal(FrameStatus.Oversized, framer.TryReadMessage(ref buffer, false, out var prefix));
            Assert.Equal(64, prefix.Length);
            Assert.Equal(FrameStatus.Message, framer.TryReadMessage(ref buffer, false, out var next));
            Assert.Equal("{\"id\":10,\"method\":\"ping\"}", Encoding.UTF8.GetString(next));
            Assert.Equal(FrameStatus.Incomplete, framer.TryReadMessage(ref buffer, false, out _));
        }
    }

    [Fact]
    public void OversizedLine_ArrivingInPieces_IsDiscardedUntilItsNewline()
    {
        var framer = new LineFramer(16);
        var first = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(new string('x', 40)));
        Assert.Equal(FrameStatus.Oversized, framer.TryReadMessage(ref first, false, out _));
        Assert.Equal(FrameStatus.Incomplete, framer.TryReadMessage(ref first, false, out _));
        Assert.True(first.IsEmpty); // discarded, not buffered

        var second = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(new string('y', 100) + "\n{}\n"));
        Assert.Equal(FrameStatus.Message, framer.TryReadMessage(ref second, false, out var message));
        Assert.Equal("{}", Encoding.UTF8.GetString(message));
    }

    [Fact]
    public void LineOfExactlyTheLimit_IsAccepted()
    {
        var framer = new LineFramer(8);
        var buffer = new ReadOnlySequence<byte>("12345678\n123456789\n"u8.ToArray());
        Assert.Equal(FrameStatus.Message, framer.TryReadMessage(ref buffer, false, out var message));
        Assert.Equal(8, message.Length);
        Assert.Equal(FrameStatus.Oversized, framer.TryReadMessage(ref buffer, false, out _));
    }

    [Fact]
    public void IncompleteLine_IsNotAMessageUntilTheStreamEnds()
    {
        var framer = new LineFramer(100);
        var buffer = new ReadOnlySequence<byte>("{\"a\":1}"u8.ToArray());
        Assert.Equal(FrameStatus.Incomplete, framer.TryReadMessage(ref buffer, false, out _));
        Assert.Equal(FrameStatus.Message, framer.TryReadMessage(ref buffer, true, out var message));
        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString(message));
    }

    private static List<string> Frame(ReadOnlySequence<byte> buffer, long max)
    {
        var framer = new LineFramer(max);
        var lines = new List<string>();
        while (framer.TryReadMessage(ref buffer, true, out ReadOnlySequence<byte> message) == FrameStatus.Message)
        {
            lines.Add(Encoding.UTF8.GetString(message));
        }

        return lines;
    }
}
