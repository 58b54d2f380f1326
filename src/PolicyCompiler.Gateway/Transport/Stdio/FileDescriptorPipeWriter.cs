using System.IO.Pipelines;
using System.Runtime.InteropServices;

namespace PolicyCompiler.Gateway.Transport.Stdio;

/// <summary>
/// A <see cref="PipeWriter"/> that buffers what is written and hands it to the pipe's file descriptor with one
/// blocking <c>write(2)</c> per <see cref="FlushAsync"/>, on the calling thread: flushing always completes
/// synchronously (back-pressure blocks the writer, as a C relay's write does). The stream-based writer
/// (<c>PipeWriter.Create(stream)</c>) instead completes the flush through the stream's asynchronous write:
/// a thread-pool work item for a console stream, the socket engine for a process pipe.
/// <para>
/// The buffer is reused (0 bytes allocated per message in a steady state); it grows for a large message and
/// goes back to its initial size after a flush. Callers serialize writes (the gateway's write locks), like for
/// every <see cref="PipeWriter"/>; <see cref="CancelPendingFlush"/> has nothing to cancel.
/// </para>
/// </summary>
internal sealed class FileDescriptorPipeWriter : PipeWriter
{
    private const int InitialBufferSize = 16 * 1024;
    private const int ShrinkAbove = 1024 * 1024;

    private readonly int _fd;
    private readonly SafeHandle? _handle;  // holds the descriptor open while we write it (owned pipes)
    private readonly IDisposable? _owner;  // closed on Complete (the child's stdin: it sees end of input), or null
    private readonly bool _ignoreBrokenPipe;
    private byte[] _buffer = new byte[InitialBufferSize];
    private int _written;
    private bool _completed;

    private FileDescriptorPipeWriter(int fd, SafeHandle? handle, IDisposable? owner, bool ignoreBrokenPipe)
    {
        _fd = fd;
        _handle = handle;
        _owner = owner;
        _ignoreBrokenPipe = ignoreBrokenPipe;
    }

    /// <summary>
    /// Writes this process's own descriptor <paramref name="fd"/> (e.g. 1, stdout), left open on completion.
    /// A reader that has gone away drops the data without error, as <see cref="Console.OpenStandardOutput()"/>'s
    /// stream does on Unix: the session ends when the client closes our stdin, not when it stops reading.
    /// </summary>
    public static FileDescriptorPipeWriter ForStandardDescriptor(int fd) => new(fd, handle: null, owner: null, ignoreBrokenPipe: true);

    /// <summary>
    /// Writes <paramref name="handle"/>'s descriptor; <see cref="Complete"/> disposes <paramref name="owner"/>
    /// (closing the pipe, so the reader sees end of input). A reader gone away is an <see cref="IOException"/>.
    /// </summary>
    public static FileDescriptorPipeWriter ForHandle(SafeHandle handle, IDisposable owner)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return new FileDescriptorPipeWriter((int)handle.DangerousGetHandle(), handle, owner, ignoreBrokenPipe: false);
    }

    /// <inheritdoc/>
    public override bool CanGetUnflushedBytes => true;

    /// <inheritdoc/>
    public override long UnflushedBytes => _written;

    /// <inheritdoc/>
    public override void Advance(int bytes)
    {
        if ((uint)bytes > (uint)(_buffer.Length - _written))
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), "Advanced past the memory returned by GetMemory/GetSpan.");
        }

        _written += bytes;
    }

    /// <inheritdoc/>
    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        EnsureRoom(sizeHint);
        return _buffer.AsMemory(_written);
    }

    /// <inheritdoc/>
    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        EnsureRoom(sizeHint);
        return _buffer.AsSpan(_written);
    }

    private void EnsureRoom(int sizeHint)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(sizeHint);
        int needed = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= needed)
        {
            return;
        }

        byte[] larger = new byte[Math.Max(_buffer.Length * 2, _written + needed)];
        Buffer.BlockCopy(_buffer, 0, larger, 0, _written);
        _buffer = larger;
    }

    /// <inheritdoc/>
    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        WriteBuffered();
        return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
    }

    private void WriteBuffered()
    {
        int count = _written;
        _written = 0; // written or failed: either way never sent again
        if (count > 0)
        {
            try
            {
                UnixPipeIo.WriteAll(_fd, _buffer.AsSpan(0, count), _ignoreBrokenPipe);
            }
            finally
            {
                if (_buffer.Length > ShrinkAbove)
                {
                    _buffer = new byte[InitialBufferSize];
                }
            }
        }
    }

    /// <inheritdoc/>
    public override void CancelPendingFlush()
    {
        // Flushes complete synchronously: there is never a pending one to cancel.
    }

    /// <summary>Writes what is still buffered (unless completing with an error), then closes an owned pipe.</summary>
    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }

        try
        {
            if (exception is null)
            {
                WriteBuffered();
            }
        }
        catch (IOException)
        {
            // The reader is gone: what was buffered can no longer be delivered, and the pipe is closed anyway.
        }
        finally
        {
            _completed = true;
            _owner?.Dispose();
            _handle?.DangerousRelease();
        }
    }
}
