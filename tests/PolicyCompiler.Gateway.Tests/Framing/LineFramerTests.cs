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
