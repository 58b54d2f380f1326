using System.Buffers;
using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Transport.Stdio;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// <c>GATEWAY http --listen … -- COMMAND [ARGS...]</c> (docs/http.md): the Streamable HTTP gateway's upstream
/// is a stdio server started once per MCP session. It is an <see cref="HttpMessageHandler"/> under the
/// gateway's upstream client, so <see cref="StreamableHttpProxy"/> enforces exactly as for a URL; this class
/// plays the Streamable HTTP server (MCP basic/transports#streamable-http) in front of the child:
/// <code>
///   POST initialize ─(1) start a child, name the session
///   POST request ──(2) write the line ─(3) wait for the first message routed to it:
///                        its response → application/json; anything else → text/event-stream, then every
///                        message routed to it until its response
///   POST notification/response ─(2) write the line ─ 202
///   GET ──(4) the session's stream for what belongs to no request (one at a time; 409 for a second)
///   DELETE, or IdleTimeout of disuse ─(5) close the child's input, grace period, kill
///   child's stdout ─(6) one PipeReader loop: frame lines, peek, route (see <see cref="ChildMessageScope"/>)
/// </code>
/// (6) routes a response to its request's stream; a progress notification to the request that carried
/// its token; a log message or a server request (sampling, elicitation, roots, ping) to the newest
/// request in flight (the client's answer comes back as a POST and is written to the child), else the GET
/// stream; list-changed and other session messages to the GET stream, else the newest request in flight.
/// With nowhere to go, a message waits (up to <see cref="BacklogLimit"/>) for the next GET stream.
/// </summary>
internal sealed class ChildProcessHandler : HttpMessageHandler
{
    /// <summary>How many undeliverable child messages a session keeps for its next GET stream.</summary>
    internal const int BacklogLimit = 256;

    private readonly string _command;
    private readonly IReadOnlyList<string> _arguments;
    private readonly TimeSpan _grace;
    private readonly long _maxMessageBytes;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, ChildSession> _sessions = new(StringComparer.Ordinal);
    private readonly Timer _reaper;

    public ChildProcessHandler(string command, IReadOnlyList<string> arguments, TimeSpan idleTimeout, TimeSpan grace, ILogger logger, long maxMessageBytes = GatewayOptions.DefaultMaxMessageBytes)
    {
        _command = command;
        _arguments = arguments;
        IdleTimeout = idleTimeout;
        _grace = grace;
        _maxMessageBytes = maxMessageBytes;
        _logger = logger;
        TimeSpan period = idleTimeout / 4 < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : idleTimeout / 4;
        _reaper = new Timer(static state => ((ChildProcessHandler)state!).Reap(), this, period, period);
    }

    /// <summary>A session unused this long loses its child.</summary>
    public TimeSpan IdleTimeout { get; }

    /// <summary>How many children run now.</summary>
    public int Children => _sessions.Count;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        string? sessionId = request.Headers.TryGetValues("Mcp-Session-Id", out IEnumerable<string>? ids) ? ids.FirstOrDefault() : null;
        ChildSession? session = null;
        if (sessionId is not null && !_sessions.TryGetValue(sessionId, out session))
        {
            return new HttpResponseMessage(HttpStatusCode.NotFound) { RequestMessage = request };
        }

        if (request.Method == HttpMethod.Delete)
        {
            if (sessionId is not null)
            {
                await EndAsync(sessionId).ConfigureAwait(false);
            }

            return new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request };
        }

        if (request.Method == HttpMethod.Get)
        {
            // Step 4: the session's own stream (basic/transports#listening-for-messages-from-the-server).
            if (session is null)
            {
                return new HttpResponseMessage(HttpStatusCode.BadRequest) { RequestMessage = request };
            }

            ChildEventStream? stream = session.OpenGetStream();
            if (stream is null)
            {
                // One GET stream per session: a second would split the session's messages between them.
                return new HttpResponseMessage(HttpStatusCode.Conflict) { RequestMessage = request };
            }

            session.Touch();
            return EventStreamResponse(request, stream, sessionId!);
        }

        if (request.Method != HttpMethod.Post || request.Content is null)
        {
            return new HttpResponseMessage(HttpStatusCode.MethodNotAllowed) { RequestMessage = request };
        }

        // The proxy has read, size-checked and classified this body already: one JSON object, in memory
        // (the client's own bytes when the proxy sends them, so nothing is copied before the write).
        ReadOnlySequence<byte> message = request.Content is StreamableHttpProxy.SequenceContent body
            ? body.Body
            : new ReadOnlySequence<byte>(await request.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false));
        JsonRpcPeek.TryRead(message, out JsonRpcPeek peek);
        bool started = session is null;
        if (session is null)
        {
            if (!peek.IsInitialize)
            {
                return new HttpResponseMessage(HttpStatusCode.BadRequest) { RequestMessage = request };
            }

            try
            {
                session = ChildSession.Start(_command, _arguments, _grace, _maxMessageBytes, _logger);
            }
            catch (Win32Exception e)
            {
                GatewayBridgeLog.UpstreamFailed(_logger, $"cannot start '{_command}': {e.Message}");
                return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request };
            }

            sessionId = Guid.NewGuid().ToString("N");
            _sessions[sessionId] = session;
        }

        ChildAnswer answer;
        try
        {
            answer = await ExchangeAsync(session, sessionId!, message, peek, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (started)
        {
            // Nobody learnt this session's id (the client, or a /readyz probe, gave up before the child answered
            // initialize): nothing can reach its child again, so it ends now rather than at the idle timeout.
            await EndAsync(sessionId!).ConfigureAwait(false);
            throw;
        }

        if (started && answer.Status != HttpStatusCode.OK)
        {
            await EndAsync(sessionId!).ConfigureAwait(false);
        }

        switch (answer.Status)
        {
            case HttpStatusCode.OK when answer.Events is not null:
                // The child spoke before answering: an SSE stream from here on, ending with the response.
                return EventStreamResponse(request, answer.Events, sessionId!);
            case HttpStatusCode.OK:
                var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ChildJsonContent(answer.Response.Json) };
                response.Headers.TryAddWithoutValidation("Mcp-Session-Id", sessionId);
                return response;
            default:
                return new HttpResponseMessage(answer.Status) { RequestMessage = request };
        }
    }

    /// <summary>
    /// A POST to an existing session, without the HTTP message objects: what <see cref="StreamableHttpProxy"/>
    /// calls directly for every request after initialize (the same exchange <see cref="SendAsync"/> makes).
    /// </summary>
    /// <param name="sessionId">The request's <c>Mcp-Session-Id</c>.</param>
    /// <param name="message">One JSON-RPC message, without a newline (valid until the returned task completes).</param>
    /// <param name="cancellationToken">The client went away.</param>
    internal Task<ChildAnswer> PostAsync(string sessionId, ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        if (!_sessions.TryGetValue(sessionId, out ChildSession? session))
        {
            return Task.FromResult(new ChildAnswer(HttpStatusCode.NotFound));
        }

        JsonRpcPeek.TryRead(message, out JsonRpcPeek peek);
        return ExchangeAsync(session, sessionId, message, peek, cancellationToken);
    }

    /// <summary>Steps 2–3: writes the message to the child and, for a request, waits for the first message routed to it.</summary>
    private async Task<ChildAnswer> ExchangeAsync(ChildSession session, string sessionId, ReadOnlySequence<byte> message, JsonRpcPeek peek, CancellationToken cancellationToken)
    {
        session.Touch();
        try
        {
            if (!peek.IsRequest)
            {
                // A notification, or the client's answer to the child's own request (sampling, elicitation...).
                await session.WriteAsync(message, cancellationToken).ConfigureAwait(false);
                return new ChildAnswer(HttpStatusCode.Accepted);
            }

            RequestRoute route = session.Begin(peek.Id, peek.ProgressToken);
            ChildMessage first;
            try
            {
                await session.WriteAsync(message, cancellationToken).ConfigureAwait(false);
                first = await route.Events.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException e)
            {
                throw new IOException(e.InnerException?.Message ?? "The upstream server has exited.", e);
            }
            catch (OperationCanceledException)
            {
                session.Abandon(route);
                throw;
            }

            session.Touch();
            return first.IsResponse
                ? new ChildAnswer(HttpStatusCode.OK, first)
                : new ChildAnswer(HttpStatusCode.OK, events: new ChildEventStream(route.Events.Reader, first, route));
        }
        catch (IOException e)
        {
            // The child exited: the gateway answers the pending request as an upstream failure.
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            await EndAsync(sessionId).ConfigureAwait(false);
            return new ChildAnswer(HttpStatusCode.BadGateway);
        }
    }

    /// <summary>Forgets a session and ends its child (if it is still known).</summary>
    private async Task EndAsync(string sessionId)
    {
        if (_sessions.TryRemove(sessionId, out ChildSession? ended))
        {
            await ended.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static HttpResponseMessage EventStreamResponse(HttpRequestMessage request, ChildEventStream stream, string sessionId)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new StreamContent(stream, bufferSize: 1) };
        response.Content.Headers.ContentType = new MediaTypeHeaderValue("text/event-stream");
        response.Headers.TryAddWithoutValidation("Mcp-Session-Id", sessionId);
        response.Headers.CacheControl = new CacheControlHeaderValue { NoCache = true };
        return response;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _reaper.Dispose();
            foreach (string id in _sessions.Keys)
            {
                if (_sessions.TryRemove(id, out ChildSession? session))
                {
                    session.DisposeAsync().AsTask().GetAwaiter().GetResult();
                }
            }
        }

        base.Dispose(disposing);
    }

    private void Reap()
    {
        long now = Environment.TickCount64;
        foreach (KeyValuePair<string, ChildSession> entry in _sessions)
        {
            if (now - entry.Value.LastUsed > (long)IdleTimeout.TotalMilliseconds && !entry.Value.Busy && _sessions.TryRemove(entry.Key, out ChildSession? idle))
            {
                _ = idle.DisposeAsync().AsTask();
            }
        }
    }

    /// <summary>A client request in flight: where the child's messages for it go.</summary>
    private sealed class RequestRoute(ChildSession session, RequestId id, RequestId progressToken) : IChildEventStreamOwner
    {
        public RequestId Id { get; } = id;

        public RequestId ProgressToken { get; } = progressToken;

        /// <summary>
        /// Written only by the session's stdout loop, outside the session's lock; completed after the response
        /// (or with an error when the child exits). Synchronous continuations: the waiting request goes on
        /// on the loop's thread (writes its answer to the client) instead of being queued to the thread pool,
        /// one thread hop less per call; which is why nothing writes here while holding the lock.
        /// </summary>
        public Channel<ChildMessage> Events { get; } = Channel.CreateUnbounded<ChildMessage>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = true });

        /// <summary>The client stopped reading this request's stream (a disconnect is not a cancellation: the child goes on).</summary>
        public void Closed(ChildEventStream stream) => session.Abandon(this);

        /// <summary>The last message: the response (called by the stdout loop after the route was forgotten, outside the lock).</summary>
        public void Answer(ChildMessage response)
        {
            Events.Writer.TryWrite(response);
            Events.Writer.TryComplete();
        }
    }

    /// <summary>One child: its stdin, a loop reading its stdout, and where each of its messages goes.</summary>
    private sealed class ChildSession : IAsyncDisposable, IChildEventStreamOwner
    {
        private readonly Process _process;
        private readonly TimeSpan _grace;
        private readonly ILogger _logger;
        private readonly Stream _stdin;
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private readonly Task _reading;

        // Routing state, guarded by _gate: requests in flight (oldest first), their progress tokens, the
        // GET stream, and what waits for one. Messages are written to channels under the lock, so a route
        // cannot complete between being chosen and being written to.
        private readonly Lock _gate = new();
        private readonly List<RequestRoute> _inFlight = [];
        private readonly Dictionary<RequestId, RequestRoute> _byProgressToken = [];
        private readonly Queue<ChildMessage> _backlog = new();
        private Channel<ChildMessage>? _getEvents;
        private ChildEventStream? _getStream;
        private bool _exited;

        private long _lastUsed = Environment.TickCount64;
        private int _disposed;

        private ChildSession(Process process, Stream stdin, Stream stdout, TimeSpan grace, long maxMessageBytes, ILogger logger)
        {
            _process = process;
            _grace = grace;
            _logger = logger;
            _stdin = stdin;
            _reading = ReadAsync(PipeReader.Create(stdout), maxMessageBytes);
        }

        public long LastUsed => Interlocked.Read(ref _lastUsed);

        public bool Busy
        {
            get
            {
                lock (_gate)
                {
                    return _inFlight.Count > 0;
                }
            }
        }

        public static ChildSession Start(string command, IReadOnlyList<string> arguments, TimeSpan grace, long maxMessageBytes, ILogger logger)
        {
            // On Linux through the launcher, so children die with the gateway, on pipes without Process's
            // StreamWriter/StreamReader (one pair per session adds up: ParentDeathLauncher.StartOnPipes).
            if (ParentDeathLauncher.IsEnabled)
            {
                Process launched = ParentDeathLauncher.StartOnPipes(command, arguments, out Stream input, out Stream output);
                return new ChildSession(launched, input, output, grace, maxMessageBytes, logger);
            }

            Process process = ParentDeathLauncher.Start(ParentDeathLauncher.CreateUpstreamStartInfo(command, arguments));
            return new ChildSession(process, process.StandardInput.BaseStream, process.StandardOutput.BaseStream, grace, maxMessageBytes, logger);
        }

        public void Touch() => Interlocked.Exchange(ref _lastUsed, Environment.TickCount64);

        /// <summary>Writes <paramref name="message"/> and its newline in one write: the child never sees half a line.</summary>
        public async Task WriteAsync(ReadOnlySequence<byte> message, CancellationToken cancellationToken)
        {
            int length = checked((int)message.Length);
            byte[] line = ArrayPool<byte>.Shared.Rent(length + 1);
            message.CopyTo(line);
            line[length] = (byte)'\n';
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await _stdin.WriteAsync(line.AsMemory(0, length + 1), cancellationToken).ConfigureAwait(false);
                await _stdin.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
                ArrayPool<byte>.Shared.Return(line);
            }
        }

        /// <summary>Registers a request before it is written, so nothing the child says about it can be missed.</summary>
        public RequestRoute Begin(RequestId id, RequestId progressToken)
        {
            var route = new RequestRoute(this, id, progressToken);
            lock (_gate)
            {
                if (_exited)
                {
                    throw new IOException("The upstream server has exited.");
                }

                _inFlight.Add(route);
                if (progressToken.HasValue)
                {
                    _byProgressToken[progressToken] = route;
                }
            }

            return route;
        }

        /// <summary>The client stopped listening for <paramref name="route"/>: nothing more is routed to it (its response is dropped).</summary>
        public void Abandon(RequestRoute route)
        {
            lock (_gate)
            {
                Forget(route);
            }
        }

        /// <summary>Opens the session's GET stream with what waited for it; null when one is open already.</summary>
        public ChildEventStream? OpenGetStream()
        {
            lock (_gate)
            {
                if (_getStream is not null)
                {
                    return null;
                }

                var events = Channel.CreateUnbounded<ChildMessage>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
                while (_backlog.TryDequeue(out ChildMessage waiting))
                {
                    events.Writer.TryWrite(waiting);
                }

                if (_exited)
                {
                    events.Writer.TryComplete();
                }

                _getEvents = events;
                _getStream = new ChildEventStream(events.Reader, null, this);
                return _getStream;
            }
        }

        /// <summary>The GET stream's client went away: the next GET opens a new one.</summary>
        public void Closed(ChildEventStream stream)
        {
            lock (_gate)
            {
                if (ReferenceEquals(_getStream, stream))
                {
                    _getEvents!.Writer.TryComplete();
                    _getStream = null;
                    _getEvents = null;
                }
            }
        }

        /// <summary>Step 6: one loop over the child's stdout, newline-delimited messages (basic/transports#stdio).</summary>
        private async Task ReadAsync(PipeReader stdout, long maxMessageBytes)
        {
            var framer = new LineFramer(maxMessageBytes);
            var classifier = new MessageClassifier();
            try
            {
                while (true)
                {
                    ReadResult read = await stdout.ReadAsync().ConfigureAwait(false);
                    ReadOnlySequence<byte> buffer = read.Buffer;
                    try
                    {
                        while (true)
                        {
                            FrameStatus status = framer.TryReadMessage(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> line);
                            if (status == FrameStatus.Incomplete)
                            {
                                break;
                            }

                            if (status == FrameStatus.Oversized)
                            {
                                GatewayLog.UpstreamMessageOversized(_logger, maxMessageBytes);
                                AnswerOversized(classifier.PeekId(line));
                                continue;
                            }

                            Route(line);
                        }
                    }
                    finally
                    {
                        stdout.AdvanceTo(buffer.Start, buffer.End);
                    }

                    if (read.IsCompleted)
                    {
                        break;
                    }
                }
            }
            catch (IOException e)
            {
                GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            }
            finally
            {
                await stdout.CompleteAsync().ConfigureAwait(false);
                RequestRoute[] waiting;
                lock (_gate)
                {
                    // The child is gone: every request still waiting fails (the client gets a -32001 error), the GET stream ends.
                    _exited = true;
                    waiting = [.. _inFlight];
                    _inFlight.Clear();
                    _byProgressToken.Clear();
                    _getEvents?.Writer.TryComplete();
                }

                // Outside the lock: completing a route runs its request's continuation on this thread.
                var exited = new IOException("The upstream server has exited.");
                foreach (RequestRoute route in waiting)
                {
                    route.Events.Writer.TryComplete(exited);
                }
            }
        }

        private void Route(in ReadOnlySequence<byte> line)
        {
            if (!JsonRpcPeek.TryRead(line, out JsonRpcPeek peek))
            {
                // Not a JSON-RPC message (a server printing to stdout by mistake): nobody can use it.
                GatewayBridgeLog.UpstreamFailed(_logger, "the upstream server wrote a line that is not a JSON object; dropped");
                return;
            }

            if (peek.Scope == ChildMessageScope.Response)
            {
                RequestRoute? answered;
                lock (_gate)
                {
                    answered = Find(peek.Id);
                    if (answered is not null)
                    {
                        Forget(answered);
                    }
                }

                // Otherwise the client stopped waiting for it (disconnect): a response to nobody.
                answered?.Answer(ChildMessage.Create(line, isResponse: true));
                return;
            }

            ChildMessage message = ChildMessage.Create(line, isResponse: false);
            RequestRoute? target;
            lock (_gate)
            {
                RequestRoute? newest = _inFlight.Count > 0 ? _inFlight[^1] : null;
                target = peek.Scope switch
                {
                    ChildMessageScope.Progress => peek.ProgressToken.HasValue && _byProgressToken.TryGetValue(peek.ProgressToken, out RequestRoute? owner) ? owner : newest,
                    ChildMessageScope.RequestRelated => newest,
                    _ => _getEvents is null ? newest : null,
                };

                if (target is not null)
                {
                    // Written below, outside the lock (a request's channel runs its reader on this thread).
                }
                else if (_getEvents is not null)
                {
                    _getEvents.Writer.TryWrite(message);
                }
                else
                {
                    if (_backlog.Count == BacklogLimit)
                    {
                        _backlog.Dequeue();
                    }

                    _backlog.Enqueue(message);
                }
            }

            // Only this loop writes to or completes a request's channel, so the target chosen above is still
            // open unless its client went away, and then the message is nobody's anyway.
            target?.Events.Writer.TryWrite(message);
        }

        /// <summary>A line too long to pass on: if it answers a request, that request gets -32002 instead.</summary>
        private void AnswerOversized(RequestId id)
        {
            if (!id.HasValue)
            {
                return;
            }

            var output = new ArrayBufferWriter<byte>(256);
            new ReplyWriter().WriteError(output, id, JsonRpcErrorCodes.ResponseTooLarge, "The upstream server's response exceeds the gateway's size limit (--max-message-bytes)");
            // WriteError ends the message with a newline; the event carries the message alone.
            var error = new ReadOnlySequence<byte>(output.WrittenMemory[..^1]);
            RequestRoute? answered;
            lock (_gate)
            {
                answered = Find(id);
                if (answered is not null)
                {
                    Forget(answered);
                }
            }

            answered?.Answer(ChildMessage.Create(error, isResponse: true));
        }

        private RequestRoute? Find(RequestId id)
        {
            foreach (RequestRoute route in _inFlight)
            {
                if (route.Id.Equals(id))
                {
                    return route;
                }
            }

            return null;
        }

        private void Forget(RequestRoute route)
        {
            _inFlight.Remove(route);
            if (route.ProgressToken.HasValue && _byProgressToken.TryGetValue(route.ProgressToken, out RequestRoute? registered) && ReferenceEquals(registered, route))
            {
                _byProgressToken.Remove(route.ProgressToken);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            // As the stdio gateway ends a session: close the child's input, give it the grace period, then kill it.
            try
            {
                _stdin.Close();
            }
            catch (IOException)
            {
            }

            using var timeout = new CancellationTokenSource(_grace);
            try
            {
                await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                try
                {
                    _process.Kill(entireProcessTree: true);
                }
                catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException)
                {
                }
            }

            await _reading.ConfigureAwait(false);
            _process.Dispose();
            _writeLock.Dispose();
        }
    }
}
