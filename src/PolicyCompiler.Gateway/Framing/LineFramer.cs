using System.Buffers;

namespace PolicyCompiler.Gateway.Framing;

/// <summary>What <see cref="LineFramer.TryReadMessage"/> found.</summary>
internal enum FrameStatus : byte
{
    /// <summary>No complete line yet: wait for more data.</summary>
    Incomplete,
    /// <summary>A complete line (without its <c>\n</c>).</summary>
    Message,
    /// <summary>
    /// A line longer than the limit: the message holds its first <c>limit</c> bytes (for peeking at the id);
    /// the rest of the line is discarded up to the next newline.
    /// </summary>
    Oversized,
}

/// <summary>
/// Splits a byte stream into newline-delimited JSON-RPC messages (MCP stdio transport: "messages are
/// delimited by newlines, and MUST NOT contain embedded newlines", basic/transports#stdio).
/// The size limit is applied before anything is parsed: a line is never buffered beyond
/// <c>maxMessageBytes</c>, and after an oversized line the framer resynchronises at the next newline.
/// One instance per direction; not thread-safe.
/// </summary>
internal struct LineFramer
{
    private readonly long _maxMessageBytes;
    private long _scanned;      // bytes at the start of the buffer already known to hold no newline
    private bool _discarding;   // inside the tail of an oversized line

    /// <summary>Creates a framer that refuses lines longer than <paramref name="maxMessageBytes"/>.</summary>
    public LineFramer(long maxMessageBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessageBytes, 1);
        _maxMessageBytes = maxMessageBytes;
    }

    /// <summary>
    /// Takes the next message off the front of <paramref name="buffer"/>. On <see cref="FrameStatus.Incomplete"/>
    /// the caller advances to <c>buffer.Start</c> (consumed) and the original end (examined), and calls again
    /// when more data arrives; <paramref name="isCompleted"/> turns a trailing line without newline into a message.
    /// </summary>
    public FrameStatus TryReadMessage(ref ReadOnlySequence<byte> buffer, bool isCompleted, out ReadOnlySequence<byte> message)
    {
        message = default;
        while (_discarding)
        {
            SequencePosition? newline = buffer.PositionOf((byte)'\n');
            if (newline is null)
            {
                buffer = buffer.Slice(buffer.End);
                if (isCompleted)
                {
                    _discarding = false;
                }

                return FrameStatus.Incomplete;
            }

            buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
            _discarding = false;
        }

        // Only look for the newline within limit + 1 bytes: a line of exactly the limit is allowed.
        long searchEnd = Math.Min(buffer.Length, _maxMessageBytes + 1);
        if (_scanned < searchEnd)
        {
            SequencePosition? found = buffer.Slice(_scanned, searchEnd - _scanned).PositionOf((byte)'\n');
            if (found is not null)
            {
                _scanned = 0;
                message = buffer.Slice(0, found.Value);
                buffer = buffer.Slice(buffer.GetPosition(1, found.Value));
                return FrameStatus.Message;
            }

            _scanned = searchEnd;
        }

        if (buffer.Length > _maxMessageBytes)
        {
            _scanned = 0;
            _discarding = true;
            message = buffer.Slice(0, _maxMessageBytes);
            buffer = buffer.Slice(_maxMessageBytes);
            return FrameStatus.Oversized;
        }

        if (isCompleted && !buffer.IsEmpty)
        {
            // The peer closed its side after a last line without newline: still a message.
            _scanned = 0;
            message = buffer;
            buffer = buffer.Slice(buffer.End);
            return FrameStatus.Message;
        }

        return FrameStatus.Incomplete;
    }
}
