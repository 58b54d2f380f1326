using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;

namespace PolicyCompiler.Gateway.Transport.Stdio;

/// <summary>
/// A <see cref="PipeReader"/> that reads a pipe's file descriptor with blocking <c>poll(2)</c> + <c>read(2)</c>
/// on the calling thread: <see cref="ReadAsync"/> always completes synchronously. Run on a dedicated thread
/// (<see cref="StdioGateway"/>), a forwarding loop is woken once per batch of input, as a C relay is; the
/// stream-based reader (<c>PipeReader.Create(stream)</c>) instead hands every read to a thread-pool work
/// item (console streams) or to the socket engine's epoll thread and then the pool (process pipes), two or
/// three thread wake-ups per message on an idle machine (docs/performance.md, "Stdio").
/// <para>
/// One contiguous buffer, reused: data is moved to its front when room runs out and it doubles only while
/// a single unconsumed line fills it (the framer bounds a line by the message size limit), going back to its
/// initial size once such a line is consumed, so reading allocates nothing in a steady state. <see cref="CancelPendingRead"/> and the read's cancellation token
/// interrupt a waiting read through an eventfd polled with the pipe. Not thread-safe apart from
/// <see cref="CancelPendingRead"/>, like every <see cref="PipeReader"/>.
/// </para>
/// </summary>
internal sealed class FileDescriptorPipeReader : PipeReader
{
    private const int InitialBufferSize = 64 * 1024; // a Linux pipe's default capacity: one read drains it
    private const int MinimumReadSize = 4096;
    private const int ShrinkAbove = 1024 * 1024;

    private readonly int _fd;
    private readonly SafeHandle? _handle;  // holds the descriptor open while we read it (owned pipes)
    private readonly IDisposable? _owner;  // closed on Complete (the child's stdout), or null (our stdin)
    private readonly UnixPipeIo.EventHandle _wake = UnixPipeIo.CreateEvent();
    private byte[] _buffer = new byte[InitialBufferSize];
    private int _start;
    private int _end;
    private bool _examinedAll = true;  // everything buffered was examined: the next read waits for more
    private bool _endOfInput;
    private bool _completed;
    private int _cancelRequested;
    private CancellationToken _registeredToken;
    private CancellationTokenRegistration _registration;

    private FileDescriptorPipeReader(int fd, SafeHandle? handle, IDisposable? owner)
    {
        _fd = fd;
        _handle = handle;
        _owner = owner;
    }

    /// <summary>Reads this process's own descriptor <paramref name="fd"/> (e.g. 0, stdin), which stays open on completion.</summary>
    public static FileDescriptorPipeReader ForStandardDescriptor(int fd) => new(fd, handle: null, owner: null);

    /// <summary>
    /// Reads <paramref name="handle"/>'s descriptor; <see cref="Complete"/> disposes <paramref name="owner"/>
    /// (the stream that owns the handle). The descriptor stays valid until then, even if the owner is disposed
    /// elsewhere meanwhile (a reference is held), so a concurrent close can never make us read another file.
    /// </summary>
    public static FileDescriptorPipeReader ForHandle(SafeHandle handle, IDisposable owner)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return new FileDescriptorPipeReader((int)handle.DangerousGetHandle(), handle, owner);
    }

    /// <summary>What is buffered and not yet consumed.</summary>
    private ReadOnlySequence<byte> Buffered => new(_buffer, _start, _end - _start);

    /// <inheritdoc/>
    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => new(Read(cancellationToken));

    /// <inheritdoc/>
    public override bool TryRead(out ReadResult result)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (Interlocked.Exchange(ref _cancelRequested, 0) != 0)
        {
            result = new ReadResult(Buffered, isCanceled: true, _endOfInput);
            return true;
        }

        if (_endOfInput || (!_examinedAll && _end > _start))
        {
            result = new ReadResult(Buffered, isCanceled: false, _endOfInput);
            return true;
        }

        result = default;
        return false;
    }

    private ReadResult Read(CancellationToken cancellationToken)
    {
        if (TryRead(out ReadResult ready))
        {
            return ready;
        }

        cancellationToken.ThrowIfCancellationRequested();
        Register(cancellationToken);
        MakeRoom();
        while (true)
        {
            if (!UnixPipeIo.WaitReadable(_fd, _wake.Fd))
            {
                // Woken: CancelPendingRead, or the token.
                if (Interlocked.Exchange(ref _cancelRequested, 0) != 0)
                {
                    return new ReadResult(Buffered, isCanceled: true, isCompleted: false);
                }

                cancellationToken.ThrowIfCancellationRequested();
                continue;
            }

            int read = UnixPipeIo.Read(_fd, _buffer.AsSpan(_end));
            if (read < 0)
            {
                continue; // would block: someone else drained it, or the descriptor is non-blocking
            }

            if (read == 0)
            {
                _endOfInput = true;
            }

            _end += read;
            _examinedAll = false;
            return new ReadResult(Buffered, isCanceled: false, _endOfInput);
        }
    }

    /// <summary>Ensures at least <see cref="MinimumReadSize"/> free bytes after the data: move it to the front, or grow.</summary>
    private void MakeRoom()
    {
        if (_start == _end)
        {
            _start = _end = 0;
            if (_buffer.Length > ShrinkAbove)
            {
                // A large message has gone through: do not keep its buffer for the rest of the session.
                _buffer = new byte[InitialBufferSize];
            }
        }

        if (_buffer.Length - _end >= MinimumReadSize)
        {
            return;
        }

        int length = _end - _start;
        byte[] target = length + MinimumReadSize <= _buffer.Length ? _buffer : new byte[Math.Max(_buffer.Length * 2, length + MinimumReadSize)];
        Buffer.BlockCopy(_buffer, _start, target, 0, length);
        _buffer = target;
        _start = 0;
        _end = length;
    }

    private void Register(CancellationToken cancellationToken)
    {
        // Once per token, not per read: the loops pass the session's token every time.
        if (!cancellationToken.CanBeCanceled || cancellationToken == _registeredToken)
        {
            return;
        }

        _registration.Dispose();
        _registeredToken = cancellationToken;
        _registration = cancellationToken.UnsafeRegister(static state => UnixPipeIo.Signal(((FileDescriptorPipeReader)state!)._wake), this);
    }

    /// <inheritdoc/>
    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    /// <inheritdoc/>
    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        int consumedIndex = IndexOf(consumed);
        int examinedIndex = IndexOf(examined);
        if (consumedIndex < _start || examinedIndex < consumedIndex || examinedIndex > _end)
        {
            throw new InvalidOperationException("AdvanceTo: positions outside the buffer last read, or examined before consumed.");
        }

        _start = consumedIndex;
        _examinedAll = examinedIndex == _end;
        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    /// <summary>A position of a sequence this reader returned, as an index into the buffer (an array sequence's positions are array indexes).</summary>
    private int IndexOf(SequencePosition position)
    {
        object? owner = position.GetObject();
        if (owner is null)
        {
            return _start; // default(SequencePosition): the start of an empty sequence
        }

        if (!ReferenceEquals(owner, _buffer))
        {
            throw new InvalidOperationException("AdvanceTo: the position is not from the buffer this reader returned last.");
        }

        return position.GetInteger();
    }

    /// <inheritdoc/>
    public override void CancelPendingRead()
    {
        Volatile.Write(ref _cancelRequested, 1);
        UnixPipeIo.Signal(_wake);
    }

    /// <inheritdoc/>
    public override void Complete(Exception? exception = null)
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        _registration.Dispose();
        _wake.Dispose();
        _owner?.Dispose();
        _handle?.DangerousRelease();
    }
}
