using System.Buffers;
using System.IO.Pipelines;
using System.IO.Pipes;
using System.Text;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Transport.Stdio;

namespace PolicyCompiler.Gateway.Tests.Transport;

/// <summary>
/// The blocking file-descriptor pipes of the stdio gateway (Linux), over real anonymous pipes: the
/// <see cref="PipeReader"/>/<see cref="PipeWriter"/> contract the forwarding loops rely on (consumed vs examined,
/// end of input, cancellation), buffer growth, closing, and no allocation per message.
/// </summary>
public sealed class FileDescriptorPipeTests : IDisposable
{
    private static readonly TimeSpan SafetyTimeout = TimeSpan.FromSeconds(30);

    private readonly AnonymousPipeServerStream _source = new(PipeDirection.Out);
    private readonly AnonymousPipeClientStream _sink;
    private readonly FileDescriptorPipeReader? _reader;

    public FileDescriptorPipeTests()
    {
        _sink = new AnonymousPipeClientStream(PipeDirection.In, _source.ClientSafePipeHandle);
        if (UnixPipeIo.IsSupported)
        {
            _reader = FileDescriptorPipeReader.ForHandle(_sink.SafePipeHandle, _sink);
        }
    }

    public void Dispose()
    {
        _reader?.Complete();
        _source.Dispose();
        _sink.Dispose();
    }

    private void Send(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        _source.Write(bytes, 0, bytes.Length);
        _source.Flush();
    }

    /// <summary>One read on a thread of its own (it blocks until data, end of input or cancellation).</summary>
    private static Task<ReadResult> ReadOnOwnThread(PipeReader reader, CancellationToken cancellationToken = default) =>
        Task.Factory.StartNew(() => reader.ReadAsync(cancellationToken).AsTask().GetAwaiter().GetResult(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Reads with the gateway's framer until <paramref name="count"/> lines (or the end); each line as text.</summary>
    private static async Task<List<string>> ReadLinesAsync(PipeReader reader, int count, long limit = 1 << 20)
    {
        var framer = new LineFramer(limit);
        var lines = new List<string>();
        while (lines.Count < count)
        {
            ReadResult read = await reader.ReadAsync();
            ReadOnlySequence<byte> buffer = read.Buffer;
            while (lines.Count < count && framer.TryReadMessage(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> message) != FrameStatus.Incomplete)
            {
                lines.Add(Encoding.UTF8.GetString(message));
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                break;
            }
        }

        return lines;
    }

    [Fact]
    public async Task Reader_FramesLinesSplitAcrossWrites_AndWaitsForTheRestOfALine()
    {
        if (_reader is null)
        {
            return; // not Linux: the gateway uses the stream-based pipes there
        }

        Send("{\"a\":1}\n{\"b\"");
        ReadResult first = await _reader.ReadAsync();
        Assert.Equal("{\"a\":1}\n{\"b\"", Encoding.UTF8.GetString(first.Buffer));

        // Consume the complete line, examine the partial one: nothing new is readable without more input.
        SequencePosition afterFirstLine = first.Buffer.GetPosition(8);
        _reader.AdvanceTo(afterFirstLine, first.Buffer.End);
        Assert.False(_reader.TryRead(out _));

        // The read blocks its thread (by design): run it on another one.
        Task<ReadResult> pending = ReadOnOwnThread(_reader);
        Send(":2}\n");
        ReadResult second = await pending.WaitAsync(SafetyTimeout);
        Assert.Equal("{\"b\":2}\n", Encoding.UTF8.GetString(second.Buffer));
        Assert.False(second.IsCompleted);

        // Examined only part of it: the same bytes are readable again at once.
        _reader.AdvanceTo(second.Buffer.Start, second.Buffer.GetPosition(3));
        Assert.True(_reader.TryRead(out ReadResult again));
        Assert.Equal("{\"b\":2}\n", Encoding.UTF8.GetString(again.Buffer));
        _reader.AdvanceTo(again.Buffer.End);
    }

    [Fact]
    public async Task Reader_AtEndOfInput_DeliversTheUnterminatedLastLine_AndCompletes()
    {
        if (_reader is null)
        {
            return;
        }

        Send("{\"id\":1}\n{\"id\":2}");
        _source.Dispose();
        List<string> lines = await ReadLinesAsync(_reader, 10).WaitAsync(SafetyTimeout);
        Assert.Equal(["{\"id\":1}", "{\"id\":2}"], lines);
        Assert.True(_reader.TryRead(out ReadResult end));
        Assert.True(end.IsCompleted);
        Assert.True(end.Buffer.IsEmpty);
    }

    [Fact]
    public async Task Reader_CancelPendingRead_WakesABlockedRead_AndTheReaderStaysUsable()
    {
        if (_reader is null)
        {
            return;
        }

        Task<ReadResult> blocked = ReadOnOwnThread(_reader);
        _reader.CancelPendingRead();
        ReadResult cancelled = await blocked.WaitAsync(SafetyTimeout);
        Assert.True(cancelled.IsCanceled);
        Assert.False(cancelled.IsCompleted);
        _reader.AdvanceTo(cancelled.Buffer.Start, cancelled.Buffer.End);

        Send("{\"after\":true}\n");
        Assert.Equal(["{\"after\":true}"], await ReadLinesAsync(_reader, 1).WaitAsync(SafetyTimeout));
    }

    [Fact]
    public async Task Reader_CancelPendingRead_BeforeTheRead_CancelsTheNextOne()
    {
        if (_reader is null)
        {
            return;
        }

        _reader.CancelPendingRead();
        ReadResult cancelled = await _reader.ReadAsync();
        Assert.True(cancelled.IsCanceled);
        _reader.AdvanceTo(cancelled.Buffer.Start);

        // The wake-up left in the eventfd is drained, not taken for a second cancellation.
        Send("{\"x\":1}\n");
        ReadResult read = await ReadOnOwnThread(_reader).WaitAsync(SafetyTimeout);
        Assert.False(read.IsCanceled);
        Assert.Equal("{\"x\":1}\n", Encoding.UTF8.GetString(read.Buffer));
        _reader.AdvanceTo(read.Buffer.End);
    }

    [Fact]
    public async Task Reader_CancelledToken_EndsABlockedRead()
    {
        if (_reader is null)
        {
            return;
        }

        using var cts = new CancellationTokenSource();
        Task<ReadResult> blocked = ReadOnOwnThread(_reader, cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked.WaitAsync(SafetyTimeout));
    }

    [Fact]
    public async Task Reader_ALineLargerThanItsBuffer_GrowsItAndFramesTheLineWhole()
    {
        if (_reader is null)
        {
            return;
        }

        // 300 KB, more than the pipe holds: written from another thread while the reader reads.
        string big = "{\"data\":\"" + new string('x', 300_000) + "\"}";
        Task writing = Task.Run(() => Send(big + "\n{\"id\":2}\n"));
        List<string> lines = await ReadLinesAsync(_reader, 2).WaitAsync(SafetyTimeout);
        await writing;
        Assert.Equal([big, "{\"id\":2}"], lines);
    }

    [Fact]
    public async Task Reader_AfterAVeryLargeLine_ShrinksBack_AndKeepsFramingLaterLines()
    {
        if (_reader is null)
        {
            return;
        }

        // 1.5 MB grows the buffer past the size it gives back once the line is consumed; the lines after it
        // (the first arriving with the big one's tail, the rest later) must come through whole.
        string big = "{\"data\":\"" + new string('z', 1_500_000) + "\"}";
        Task writing = Task.Run(() => Send(big + "\n{\"id\":2}\n"));
        List<string> lines = await ReadLinesAsync(_reader, 2, limit: GatewayOptions.DefaultMaxMessageBytes).WaitAsync(SafetyTimeout);
        await writing;
        Assert.Equal([big, "{\"id\":2}"], lines);

        Send("{\"id\":3}\n{\"id\":4}\n");
        Assert.Equal(["{\"id\":3}", "{\"id\":4}"], await ReadLinesAsync(_reader, 2).WaitAsync(SafetyTimeout));
    }

    [Fact]
    public async Task Reader_ALineOverTheLimit_IsOversized_AndTheNextLineIsFramed()
    {
        if (_reader is null)
        {
            return;
        }

        Task writing = Task.Run(() => Send(new string('y', 200_000) + "\n{\"ok\":1}\n"));
        var framer = new LineFramer(1000);
        var statuses = new List<FrameStatus>();
        string? last = null;
        while (last is null)
        {
            ReadResult read = await _reader.ReadAsync();
            ReadOnlySequence<byte> buffer = read.Buffer;
            FrameStatus status;
            while ((status = framer.TryReadMessage(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> message)) != FrameStatus.Incomplete)
            {
                statuses.Add(status);
                if (status == FrameStatus.Message)
                {
                    last = Encoding.UTF8.GetString(message);
                }
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
        }

        await writing.WaitAsync(SafetyTimeout);
        Assert.Equal([FrameStatus.Oversized, FrameStatus.Message], statuses);
        Assert.Equal("{\"ok\":1}", last);
    }

    [Fact]
    public async Task Writer_WritesOnFlush_AndCompleteWritesTheRestAndClosesThePipe()
    {
        if (!UnixPipeIo.IsSupported)
        {
            return;
        }

        using var target = new AnonymousPipeServerStream(PipeDirection.In);
        var writing = new AnonymousPipeClientStream(PipeDirection.Out, target.ClientSafePipeHandle);
        FileDescriptorPipeWriter writer = FileDescriptorPipeWriter.ForHandle(writing.SafePipeHandle, writing);

        await writer.WriteAsync("{\"id\":1}\n"u8.ToArray());
        Assert.Equal(0, writer.UnflushedBytes);
        byte[] line = new byte[9];
        target.ReadExactly(line);
        Assert.Equal("{\"id\":1}\n", Encoding.UTF8.GetString(line));

        "{\"id\":2}\n"u8.CopyTo(writer.GetSpan(9));
        writer.Advance(9);
        Assert.Equal(9, writer.UnflushedBytes);
        await writer.CompleteAsync();

        // Completing flushed the buffered line and closed the pipe: the reader sees it, then end of input.
        using var rest = new MemoryStream();
        await target.CopyToAsync(rest).WaitAsync(SafetyTimeout);
        Assert.Equal("{\"id\":2}\n", Encoding.UTF8.GetString(rest.ToArray()));
    }

    [Fact]
    public async Task Writer_ToAPipeWhoseReaderIsGone_FailsWithIOException()
    {
        if (!UnixPipeIo.IsSupported)
        {
            return;
        }

        var target = new AnonymousPipeServerStream(PipeDirection.In);
        var writing = new AnonymousPipeClientStream(PipeDirection.Out, target.ClientSafePipeHandle);
        target.Dispose();
        FileDescriptorPipeWriter writer = FileDescriptorPipeWriter.ForHandle(writing.SafePipeHandle, writing);
        await Assert.ThrowsAsync<IOException>(async () => await writer.WriteAsync("{}\n"u8.ToArray()));
        await writer.CompleteAsync(); // nothing left to write; closes quietly
    }

    [Fact]
    public async Task ReaderAndWriter_AllocateNothingPerMessage_InSteadyState()
    {
        if (_reader is null)
        {
            return;
        }

        using var target = new AnonymousPipeServerStream(PipeDirection.In);
        var writing = new AnonymousPipeClientStream(PipeDirection.Out, target.ClientSafePipeHandle);
        FileDescriptorPipeWriter writer = FileDescriptorPipeWriter.ForHandle(writing.SafePipeHandle, writing);
        byte[] message = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}\n"u8.ToArray();
        byte[] sink = new byte[message.Length];
        var framer = new LineFramer(1 << 20);

        // One message in at the reader, framed, forwarded through the writer, read back out of its pipe; counts
        // what the reader, framer and writer allocate (not the test's own PipeStream calls on the other ends).
        long Forward()
        {
            _source.Write(message, 0, message.Length);
            long before = GC.GetAllocatedBytesForCurrentThread();
            ReadResult read = _reader.ReadAsync().GetAwaiter().GetResult();
            ReadOnlySequence<byte> buffer = read.Buffer;
            FrameStatus status = framer.TryReadMessage(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> line);
            SequenceWriter.WriteLine(writer, line);
            _reader.AdvanceTo(buffer.Start, buffer.End);
            writer.FlushAsync().GetAwaiter().GetResult();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(FrameStatus.Message, status);
            target.ReadExactly(sink);
            return allocated;
        }

        for (int i = 0; i < 10; i++)
        {
            Forward();
        }

        long allocated = 0;
        for (int i = 0; i < 1000; i++)
        {
            allocated += Forward();
        }

        Assert.Equal(message, sink);
        Assert.Equal(0, allocated);
        await writer.CompleteAsync();
    }
}
