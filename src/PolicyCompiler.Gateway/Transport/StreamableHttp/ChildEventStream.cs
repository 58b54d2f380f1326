using System.Threading.Channels;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// One message from a stdio child on its way to the HTTP client: the line framed as an SSE event
/// (<c>event: message\ndata: LINE\n\n</c>) in one array, so the same bytes serve an SSE stream and,
/// through <see cref="Json"/>, a plain <c>application/json</c> body.
/// </summary>
internal readonly struct ChildMessage
{
    private static ReadOnlySpan<byte> Prefix => "event: message\ndata: "u8;

    private static ReadOnlySpan<byte> Suffix => "\n\n"u8;

    private ChildMessage(byte[] framed, bool isResponse)
    {
        Framed = framed;
        IsResponse = isResponse;
    }

    /// <summary>The SSE event (WHATWG HTML §9.2: one <c>data</c> line, the message has no newline).</summary>
    public byte[] Framed { get; }

    /// <summary>Whether this is the response that ends a request's stream.</summary>
    public bool IsResponse { get; }

    /// <summary>The message itself.</summary>
    public ArraySegment<byte> Json => new(Framed, Prefix.Length, Framed.Length - Prefix.Length - Suffix.Length);

    /// <summary>Copies <paramref name="line"/> (one JSON-RPC message) into a framed event.</summary>
    public static ChildMessage Create(in System.Buffers.ReadOnlySequence<byte> line, bool isResponse)
    {
        byte[] framed = new byte[Prefix.Length + line.Length + Suffix.Length];
        Prefix.CopyTo(framed);
        System.Buffers.BuffersExtensions.CopyTo(line, framed.AsSpan(Prefix.Length));
        Suffix.CopyTo(framed.AsSpan(framed.Length - Suffix.Length));
        return new ChildMessage(framed, isResponse);
    }
}

/// <summary>
/// What a stdio child made of one POST (<see cref="ChildProcessHandler.PostAsync"/>): 202 (a notification or
/// response was written), 200 with the response (<see cref="Response"/>), 200 with an event stream
/// (<see cref="Events"/>: the child spoke first), 404 (no such session) or 502 (the child exited).
/// </summary>
internal readonly struct ChildAnswer(System.Net.HttpStatusCode status, ChildMessage response = default, ChildEventStream? events = null)
{
    /// <summary>The HTTP status the Streamable HTTP server in front of the child answers with.</summary>
    public System.Net.HttpStatusCode Status { get; } = status;

    /// <summary>The response, when it was the child's first message for the request.</summary>
    public ChildMessage Response { get; } = response;

    /// <summary>The request's event stream, when the child said something else first.</summary>
    public ChildEventStream? Events { get; } = events;
}

/// <summary>
/// The <c>application/json</c> body of a child's answer: the message inside its <see cref="ChildMessage"/>
/// array, readable as a stream like any content, and by <see cref="StreamableHttpProxy"/> directly as bytes
/// (<see cref="Json"/>), so a relayed answer needs no stream, pipe reader or copy on the gateway's side.
/// </summary>
internal sealed class ChildJsonContent : HttpContent
{
    private readonly ArraySegment<byte> _json;

    public ChildJsonContent(ArraySegment<byte> json)
    {
        _json = json;
        Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
    }

    /// <summary>The message.</summary>
    public ReadOnlyMemory<byte> Json => _json;

    protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context, CancellationToken cancellationToken) =>
        stream.WriteAsync(_json.AsMemory(), cancellationToken).AsTask();

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => new MemoryStream(_json.Array!, _json.Offset, _json.Count, writable: false);

    protected override Task<Stream> CreateContentReadStreamAsync() => Task.FromResult(CreateContentReadStream(CancellationToken.None));

    protected override bool TryComputeLength(out long length)
    {
        length = _json.Count;
        return true;
    }
}

/// <summary>Told when a <see cref="ChildEventStream"/> is disposed (the client stopped reading it).</summary>
internal interface IChildEventStreamOwner
{
    /// <summary>Nothing more should be routed to <paramref name="stream"/>.</summary>
    void Closed(ChildEventStream stream);
}

/// <summary>
/// The body of an SSE response the gateway makes up for a stdio child (a request's stream, or the
/// session's GET stream): a read-only <see cref="Stream"/> that hands out the events the child's reader
/// loop puts in its channel, as they come. It ends when the channel is completed (after a request's
/// response); a channel completed with an error (the child exited) surfaces as an <see cref="IOException"/>,
/// which the proxy reports to the client as a broken upstream. Disposing it (the client went away) tells
/// the owner, so nothing more is routed to it.
/// </summary>
internal sealed class ChildEventStream : Stream
{
    private readonly ChannelReader<ChildMessage> _events;
    private readonly IChildEventStreamOwner _owner;
    private byte[]? _current;
    private int _offset;
    private int _disposed;

    public ChildEventStream(ChannelReader<ChildMessage> events, ChildMessage? first, IChildEventStreamOwner owner)
    {
        _events = events;
        _owner = owner;
        _current = first?.Framed;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        while (_current is null || _offset == _current.Length)
        {
            try
            {
                if (!await _events.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    return 0;
                }
            }
            catch (ChannelClosedException e)
            {
                throw new IOException(e.InnerException?.Message ?? "The upstream server has exited.", e.InnerException);
            }

            if (_events.TryRead(out ChildMessage next))
            {
                _current = next.Framed;
                _offset = 0;
            }
        }

        int count = Math.Min(buffer.Length, _current.Length - _offset);
        _current.AsSpan(_offset, count).CopyTo(buffer.Span);
        _offset += count;
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _owner.Closed(this);
        }

        base.Dispose(disposing);
    }
}
