using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// <c>GATEWAY stdio --upstream URL</c> (docs/http.md "A local client in front of a remote server"): a local
/// client speaks newline JSON on stdin/stdout, the upstream is a Streamable HTTP endpoint. The enforcement
/// is the stdio gateway's own (<see cref="StdioGateway.RunAsync"/>, unchanged); only its upstream pipes are
/// connected to an <see cref="HttpUpstreamBridge"/> instead of a child process, so decisions, replies,
/// tools/list filtering and counter settling are exactly the stdio ones.
/// </summary>
public static class StdioToHttpGateway
{
    /// <summary>Proxies one session until the client closes its input; then deletes the upstream session.</summary>
    /// <param name="clientIn">Messages from the client.</param>
    /// <param name="clientOut">Messages to the client.</param>
    /// <param name="upstream">The upstream's MCP endpoint.</param>
    /// <param name="upstreamHeaders">Headers sent with every upstream request (the gateway's credentials).</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="options">Grant, session, limits.</param>
    /// <param name="audit">The audit log, or null.</param>
    /// <param name="logger">Diagnostics.</param>
    /// <param name="handler">Sends upstream requests (tests); a <see cref="SocketsHttpHandler"/> when null.</param>
    /// <param name="cancellationToken">Stops the session.</param>
    public static async Task<GatewayRunResult> RunAsync(
        PipeReader clientIn,
        PipeWriter clientOut,
        Uri upstream,
        IReadOnlyList<KeyValuePair<string, string>> upstreamHeaders,
        IPolicyEvaluator evaluator,
        GatewayOptions options,
        AuditLog? audit = null,
        ILogger? logger = null,
        HttpMessageHandler? handler = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        ArgumentNullException.ThrowIfNull(options);
        logger ??= NullLogger.Instance;
        var toUpstream = new Pipe();
        var fromUpstream = new Pipe();
        using var bridge = new HttpUpstreamBridge(upstream, upstreamHeaders ?? [], handler, fromUpstream.Writer, options.MaxMessageBytes, logger);
        Task pump = bridge.RunAsync(toUpstream.Reader, cancellationToken);
        GatewayRunResult result = await StdioGateway.RunAsync(clientIn, clientOut, fromUpstream.Reader, toUpstream.Writer, evaluator, options, audit, logger, cancellationToken).ConfigureAwait(false);
        try
        {
            await pump.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }

        return result;
    }
}

/// <summary>
/// Turns the stdio gateway's upstream side into Streamable HTTP (basic/transports#streamable-http), as a
/// client that keeps its session alive by itself:
/// <code>
///   forwarded line ─(1) POST ─(2) 404 for the session? ─▶ replay initialize + initialized, POST again
///                                 (3) 401/403 ─▶ the gateway's credentials were refused: an error for the request
///                  ◀─(4) JSON body, or SSE events as they come ◀─(5) an SSE stream ended before its response,
///                                                                    after an event id: GET + Last-Event-ID once retry: passed
///   (6) after initialize: a GET stream for server-initiated messages, reopened with Last-Event-ID when it drops
/// </code>
/// (1) each forwarded line is POSTed in order, with the session id of the initialize response and the
/// negotiated protocol version; (2) basic/transports#session-management: a 404 to a request that carried a
/// session id means the server ended the session and the client MUST start a new one — the local client
/// cannot see HTTP, so the bridge does it with the client's own initialize and initialized (the new
/// initialize result is not passed on: the client already has one, and a different protocol version is an
/// error, not a silent switch); (4) bodies become lines; (5)(6) basic/transports#resumability-and-redelivery:
/// resumption is always a GET with <c>Last-Event-ID</c>, after the <c>retry</c> the server set. A request
/// the upstream does not answer gets a JSON-RPC error, so the gateway settles it and the client never waits
/// forever. End of input waits for open responses, closes the GET stream and DELETEs the session.
/// </summary>
internal sealed class HttpUpstreamBridge : IDisposable
{
    /// <summary>SSE's reconnection time until the server sets one with <c>retry:</c> (the HTML standard leaves the default to the client).</summary>
    internal static readonly TimeSpan DefaultRetry = TimeSpan.FromSeconds(1);

    /// <summary>Reconnections in a row that bring no event before a stream is given up.</summary>
    internal const int MaxReconnects = 5;

    private static readonly MediaTypeWithQualityHeaderValue Json = new("application/json");
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");
    private readonly Uri _upstream;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _headers;
    private readonly HttpMessageInvoker _http;
    private readonly PipeWriter _toClient;
    private readonly long _maxMessageBytes;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly List<Task> _open = [];

    // Read by response readers and the GET stream while the POST loop may replace them (re-initialization).
    private volatile string? _sessionId;
    private volatile string? _protocolVersion;

    // The client's handshake, replayed when the upstream forgets the session.
    private byte[]? _initialize;
    private byte[]? _initialized;

    // The session ended upstream and could not be restarted yet: the next message tries again.
    private bool _sessionLost;
    private CancellationTokenSource? _listenStop;
    private Task? _listening;

    public HttpUpstreamBridge(Uri upstream, IReadOnlyList<KeyValuePair<string, string>> headers, HttpMessageHandler? handler, PipeWriter toClient, long maxMessageBytes, ILogger logger)
    {
        _upstream = upstream;
        _headers = headers;
        _http = new HttpMessageInvoker(handler ?? new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.All }, disposeHandler: handler is null);
        _toClient = toClient;
        _maxMessageBytes = maxMessageBytes;
        _logger = logger;
    }

    /// <summary>Reads forwarded lines until the gateway completes the pipe; completes <see cref="_toClient"/> at the end.</summary>
    public async Task RunAsync(PipeReader forwarded, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                ReadResult read = await forwarded.ReadAsync(cancellationToken).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = read.Buffer;
                while (buffer.PositionOf((byte)'\n') is SequencePosition end)
                {
                    byte[] message = buffer.Slice(0, end).ToArray();
                    buffer = buffer.Slice(buffer.GetPosition(1, end));
                    await PostAsync(message, cancellationToken).ConfigureAwait(false);
                }

                forwarded.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted || read.IsCanceled)
                {
                    break;
                }
            }

            Task[] open;
            lock (_open)
            {
                open = [.. _open];
            }

            await Task.WhenAll(open).ConfigureAwait(false);
            await StopListeningAsync().ConfigureAwait(false);
            await DeleteSessionAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await StopListeningAsync().ConfigureAwait(false);
            await forwarded.CompleteAsync().ConfigureAwait(false);
            await _toClient.CompleteAsync().ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        _listenStop?.Dispose();
        _http.Dispose();
        _writeLock.Dispose();
    }

    /// <summary>A request with the gateway's headers; the session and protocol version too unless it opens a session.</summary>
    private HttpRequestMessage NewRequest(HttpMethod method, bool opensSession = false)
    {
        var request = new HttpRequestMessage(method, _upstream);
        foreach (KeyValuePair<string, string> header in _headers)
        {
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (!opensSession && _sessionId is { } session)
        {
            request.Headers.TryAddWithoutValidation("Mcp-Session-Id", session);
        }

        if (!opensSession && _protocolVersion is { } version)
        {
            request.Headers.TryAddWithoutValidation("MCP-Protocol-Version", version);
        }

        return request;
    }

    private HttpRequestMessage NewPost(byte[] message, bool opensSession = false)
    {
        HttpRequestMessage request = NewRequest(HttpMethod.Post, opensSession);
        request.Headers.Accept.Add(Json);
        request.Headers.Accept.Add(EventStream);
        request.Content = new ByteArrayContent(message);
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return request;
    }

    /// <summary>Steps 1–4 for one message; its response body is read concurrently (a tool call may stream for long) unless the session is still being set up.</summary>
    private async Task PostAsync(byte[] message, CancellationToken cancellationToken)
    {
        RememberHandshake(message);
        if (_sessionLost && !await TryReinitializeAsync(message, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        string? session = _sessionId;
        HttpResponseMessage? response = await SendPostAsync(message, cancellationToken).ConfigureAwait(false);
        if (response is null)
        {
            return;
        }

        // Step 2. A response the client sends (to a server request of the ended session) means nothing in a new one.
        if (response.StatusCode == HttpStatusCode.NotFound && session is not null && _initialize is not null
            && !IsResponse(new ReadOnlySequence<byte>(message)))
        {
            response.Dispose();
            GatewayBridgeLog.SessionEnded(_logger, session);
            if (!await TryReinitializeAsync(message, cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            response = await SendPostAsync(message, cancellationToken).ConfigureAwait(false);
            if (response is null)
            {
                return;
            }
        }

        if (_sessionId is null && !_sessionLost && response.Headers.TryGetValues("Mcp-Session-Id", out IEnumerable<string>? ids))
        {
            _sessionId = ids.FirstOrDefault();
        }

        Task body = ReadResponseAsync(message, response, cancellationToken);
        if (_protocolVersion is null)
        {
            // Until initialize has been answered, later messages must carry what it negotiated.
            await body.ConfigureAwait(false);
            return;
        }

        lock (_open)
        {
            _open.RemoveAll(static t => t.IsCompleted);
            _open.Add(body);
        }

        if (_listening is null && _sessionId is not null)
        {
            // After initialize (and the message that followed it): open the stream for server-initiated messages.
            StartListening(cancellationToken);
        }
    }

    /// <summary>Sends one POST; null when the request was already answered with an error (unreachable, credentials refused).</summary>
    private async Task<HttpResponseMessage?> SendPostAsync(byte[] message, CancellationToken cancellationToken)
    {
        using HttpRequestMessage request = NewPost(message);
        HttpResponseMessage response;
        try
        {
            // In order, awaiting the headers: the initialize response's session id must be known before the next message goes out.
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            await AnswerWithErrorAsync(message, JsonRpcErrorCodes.UpstreamClosed, "The upstream server cannot be reached: " + e.Message, cancellationToken).ConfigureAwait(false);
            return null;
        }

        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            // Step 3. The credentials are the gateway's (--upstream-header), not the client's, so the client can do nothing
            // but report it. The upstream's WWW-Authenticate challenge is not passed on: it may name realms, scopes or
            // authorization servers of the upstream, and it is the operator who must act.
            int status = (int)response.StatusCode;
            response.Dispose();
            GatewayBridgeLog.CredentialsRefused(_logger, status);
            await AnswerWithErrorAsync(message, JsonRpcErrorCodes.UpstreamUnauthorized, UpstreamRefusedCredentials(status), cancellationToken).ConfigureAwait(false);
            return null;
        }

        return response;
    }

    /// <summary>The client-facing text of step 3 (shared with the HTTP gateway's answer).</summary>
    internal static string UpstreamRefusedCredentials(int status) =>
        $"The upstream MCP server refused the gateway's credentials (HTTP {status}); the gateway's operator must fix its --upstream-header";

    /// <summary>Keeps the client's initialize and initialized, to replay them if the upstream ends the session.</summary>
    private void RememberHandshake(byte[] message)
    {
        if (_initialized is not null)
        {
            return;
        }

        if (HasMethod(message, "initialize"u8))
        {
            _initialize = message;
        }
        else if (HasMethod(message, "notifications/initialized"u8))
        {
            _initialized = message;
        }
    }

    /// <summary>Step 2 for <paramref name="message"/>: a new session, or the message answered with an error saying why there is none.</summary>
    private async Task<bool> TryReinitializeAsync(byte[] message, CancellationToken cancellationToken)
    {
        string? failure = await ReinitializeAsync(cancellationToken).ConfigureAwait(false);
        _sessionLost = failure is not null;
        if (failure is null)
        {
            return true;
        }

        GatewayBridgeLog.ReinitializeFailed(_logger, failure);
        await AnswerWithErrorAsync(message, JsonRpcErrorCodes.UpstreamClosed, "The upstream server ended the MCP session and a new one could not be started: " + failure, cancellationToken).ConfigureAwait(false);
        return false;
    }

    /// <summary>Replays the client's initialize and initialized; null on success, else the reason.</summary>
    private async Task<string?> ReinitializeAsync(CancellationToken cancellationToken)
    {
        // The GET stream belonged to the ended session.
        await StopListeningAsync().ConfigureAwait(false);
        _sessionId = null;
        try
        {
            string? session;
            using (HttpRequestMessage request = NewPost(_initialize!, opensSession: true))
            using (HttpResponseMessage response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false))
            {
                if (!response.IsSuccessStatusCode)
                {
                    return $"initialize was answered HTTP {(int)response.StatusCode}";
                }

                session = response.Headers.TryGetValues("Mcp-Session-Id", out IEnumerable<string>? ids) ? ids.FirstOrDefault() : null;
                var result = new ArrayBufferWriter<byte>();
                if (!await ReadBodyAsync(response, result, null, cancellationToken).ConfigureAwait(false))
                {
                    return "initialize was not answered";
                }

                string? version = ReadProtocolVersion(new ReadOnlySequence<byte>(result.WrittenMemory));
                if (version is null)
                {
                    return "initialize was answered with an error: " + Encoding.UTF8.GetString(result.WrittenSpan);
                }

                if (_protocolVersion is { } negotiated && version != negotiated)
                {
                    return $"the new session negotiated protocol version {version}, the client's is {negotiated}";
                }
            }

            _sessionId = session;
            if (_initialized is not null)
            {
                using HttpRequestMessage notification = NewPost(_initialized);
                using HttpResponseMessage accepted = await _http.SendAsync(notification, cancellationToken).ConfigureAwait(false);
                if (!accepted.IsSuccessStatusCode)
                {
                    _sessionId = null;
                    return $"notifications/initialized was answered HTTP {(int)accepted.StatusCode}";
                }
            }
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            _sessionId = null;
            return e.Message;
        }

        GatewayBridgeLog.Reinitialized(_logger, _sessionId ?? "(none)");
        if (_sessionId is not null)
        {
            StartListening(cancellationToken);
        }

        return null;
    }

    private void StartListening(CancellationToken cancellationToken)
    {
        _listenStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _listening = ListenAsync(_listenStop.Token);
    }

    private async Task StopListeningAsync()
    {
        if (_listenStop is null)
        {
            return;
        }

        await _listenStop.CancelAsync().ConfigureAwait(false);
        await _listening!.ConfigureAwait(false);
        _listenStop.Dispose();
        _listenStop = null;
        _listening = null;
    }

    /// <summary>
    /// Step 6, the GET stream (basic/transports#listening-for-messages-from-the-server): requests and notifications
    /// the server sends outside any response, e.g. list-changed notifications. A server may not offer one (405).
    /// When it drops, it is reopened after <c>retry</c> with the last event id seen, so the server can replay what
    /// the gap would have lost; a 404 means the session ended (the next POST starts a new one, and a new stream).
    /// </summary>
    private async Task ListenAsync(CancellationToken stop)
    {
        var cursor = new StreamCursor();
        int failures = 0;
        while (true)
        {
            try
            {
                using HttpRequestMessage request = NewRequest(HttpMethod.Get);
                request.Headers.Accept.Add(EventStream);
                if (cursor.LastEventId is { } last)
                {
                    request.Headers.TryAddWithoutValidation("Last-Event-ID", last);
                }

                using HttpResponseMessage response = await _http.SendAsync(request, stop).ConfigureAwait(false);
                if (response.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    return;
                }

                if (response.IsSuccessStatusCode && IsEventStream(response))
                {
                    await ReadBodyAsync(response, null, cursor, stop).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            }

            if (stop.IsCancellationRequested)
            {
                return;
            }

            failures = cursor.TakeReceived() ? 1 : failures + 1;
            if (failures > MaxReconnects)
            {
                GatewayBridgeLog.StreamAbandoned(_logger, MaxReconnects);
                return;
            }

            try
            {
                await Task.Delay(cursor.Retry, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ReadResponseAsync(byte[] message, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            bool answered = false;
            try
            {
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    return;
                }

                if (!response.IsSuccessStatusCode)
                {
                    GatewayBridgeLog.UpstreamStatus(_logger, (int)response.StatusCode);
                    return;
                }

                var cursor = new StreamCursor();
                bool broke = false;
                try
                {
                    answered = await ReadBodyAsync(response, null, cursor, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
                    broke = true;
                }

                // Step 5 (basic/transports, sending messages to the server, 6): the server may close the connection
                // before the response, once it has sent an event id; the client resumes with GET + Last-Event-ID.
                // Only a stream the server meant to be resumed is: one it closed itself, or one it gave a retry:
                // (the revision's "SHOULD send retry before closing"). A server that merely numbers its events and
                // then breaks would answer the GET with its ordinary server stream, which never brings the response.
                int failures = 0;
                while (!answered && cursor.LastEventId is not null && (!broke || cursor.RetrySet) && !cancellationToken.IsCancellationRequested)
                {
                    failures = cursor.TakeReceived() ? 1 : failures + 1;
                    if (failures > MaxReconnects)
                    {
                        GatewayBridgeLog.StreamAbandoned(_logger, MaxReconnects);
                        break;
                    }

                    await Task.Delay(cursor.Retry, cancellationToken).ConfigureAwait(false);
                    (answered, bool gone) = await ResumeAsync(cursor, cancellationToken).ConfigureAwait(false);
                    if (gone)
                    {
                        break;
                    }
                }
            }
            finally
            {
                if (!answered)
                {
                    await AnswerWithErrorAsync(message, JsonRpcErrorCodes.UpstreamClosed, $"The upstream server did not answer (HTTP {(int)response.StatusCode})", cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>One resumption of a POST's stream: whether the response came, and whether resuming is pointless (the stream or session is gone).</summary>
    private async Task<(bool Answered, bool Gone)> ResumeAsync(StreamCursor cursor, CancellationToken cancellationToken)
    {
        try
        {
            using HttpRequestMessage request = NewRequest(HttpMethod.Get);
            request.Headers.Accept.Add(EventStream);
            request.Headers.TryAddWithoutValidation("Last-Event-ID", cursor.LastEventId);
            using HttpResponseMessage response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                return (false, true);
            }

            if (!response.IsSuccessStatusCode || !IsEventStream(response))
            {
                return (false, false);
            }

            return (await ReadBodyAsync(response, null, cursor, cancellationToken).ConfigureAwait(false), false);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            return (false, false);
        }
    }

    /// <summary>
    /// Reads a JSON body or an SSE stream to its end, passing each message to the client as a line; true when a
    /// response was among them. With <paramref name="capture"/>, the response is kept there instead of passed on.
    /// </summary>
    private async Task<bool> ReadBodyAsync(HttpResponseMessage response, ArrayBufferWriter<byte>? capture, StreamCursor? cursor, CancellationToken cancellationToken)
    {
        string? mediaType = response.Content.Headers.ContentType?.MediaType;
        bool events = string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);
        if (!events && !string.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Stream stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        PipeReader reader = PipeReader.Create(stream);
        try
        {
            return events
                ? await ReadEventsAsync(reader, capture, cursor ?? new StreamCursor(), cancellationToken).ConfigureAwait(false)
                : await ReadJsonAsync(reader, capture, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static bool IsEventStream(HttpResponseMessage response) =>
        string.Equals(response.Content.Headers.ContentType?.MediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);

    private async Task<bool> ReadJsonAsync(PipeReader reader, ArrayBufferWriter<byte>? capture, CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult read = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (read.IsCompleted || read.Buffer.Length > _maxMessageBytes)
            {
                ReadOnlySequence<byte> body = read.Buffer;
                if (body.IsEmpty)
                {
                    return false;
                }

                bool answered = await EmitAsync(body, capture, cancellationToken).ConfigureAwait(false);
                reader.AdvanceTo(body.End);
                return answered;
            }

            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private async Task<bool> ReadEventsAsync(PipeReader reader, ArrayBufferWriter<byte>? capture, StreamCursor cursor, CancellationToken cancellationToken)
    {
        bool answered = false;
        var joined = new ArrayBufferWriter<byte>();
        while (true)
        {
            ReadResult read = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = read.Buffer;
            while (SseEventFramer.TryReadEvent(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> sseEvent))
            {
                cursor.Read(sseEvent);
                joined.ResetWrittenCount();
                int lines = SseEventFramer.ReadData(sseEvent, joined, out ReadOnlySequence<byte> data, out bool otherType);
                ReadOnlySequence<byte> payload = lines == 1 ? data : new ReadOnlySequence<byte>(joined.WrittenMemory);
                if (lines == 0 || otherType || payload.IsEmpty)
                {
                    continue; // priming events (an id, empty data) and non-message events carry nothing for the client
                }

                answered |= await EmitAsync(payload, capture, cancellationToken).ConfigureAwait(false);
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                return answered;
            }
        }
    }

    /// <summary>Passes one message on (or keeps a response in <paramref name="capture"/>); true when it is a response.</summary>
    private async Task<bool> EmitAsync(ReadOnlySequence<byte> payload, ArrayBufferWriter<byte>? capture, CancellationToken cancellationToken)
    {
        bool response = IsResponse(payload);
        if (response && capture is not null)
        {
            if (capture.WrittenCount == 0)
            {
                foreach (ReadOnlyMemory<byte> segment in payload)
                {
                    capture.Write(segment.Span);
                }
            }

            return true;
        }

        await WriteLineAsync(payload, cancellationToken).ConfigureAwait(false);
        return response;
    }

    /// <summary>Writes one message as a line, learning the negotiated protocol version from the first response that states one.</summary>
    private async Task WriteLineAsync(ReadOnlySequence<byte> payload, CancellationToken cancellationToken)
    {
        if (_protocolVersion is null)
        {
            _protocolVersion = ReadProtocolVersion(payload);
        }

        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (ReadOnlyMemory<byte> segment in payload)
            {
                Span<byte> span = _toClient.GetSpan(segment.Length);
                segment.Span.CopyTo(span);
                // A line break inside a message would split it; outside strings it is whitespace, inside one it is invalid JSON anyway.
                span[..segment.Length].Replace((byte)'\n', (byte)' ');
                span[..segment.Length].Replace((byte)'\r', (byte)' ');
                _toClient.Advance(segment.Length);
            }

            _toClient.GetSpan(1)[0] = (byte)'\n';
            _toClient.Advance(1);
            await _toClient.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>A request the upstream did not answer gets an error response, so the gateway settles it and the client is not left waiting.</summary>
    private async Task AnswerWithErrorAsync(byte[] message, int code, string text, CancellationToken cancellationToken)
    {
        string? id = RequestIdOf(message);
        if (id is null)
        {
            return;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("jsonrpc", "2.0");
            writer.WritePropertyName("id");
            writer.WriteRawValue(id);
            writer.WriteStartObject("error");
            writer.WriteNumber("code", code);
            writer.WriteString("message", text);
            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        await WriteLineAsync(new ReadOnlySequence<byte>(buffer.WrittenMemory), cancellationToken).ConfigureAwait(false);
    }

    private async Task DeleteSessionAsync(CancellationToken cancellationToken)
    {
        if (_sessionId is null)
        {
            return;
        }

        try
        {
            using HttpRequestMessage request = NewRequest(HttpMethod.Delete);
            using HttpResponseMessage response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            // The session expires on the server anyway; the client has already gone.
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
        }
    }

    /// <summary>True when the message is an object whose top-level <c>method</c> is <paramref name="method"/>.</summary>
    private static bool HasMethod(byte[] message, ReadOnlySpan<byte> method)
    {
        var reader = new Utf8JsonReader(message);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isMethod = reader.ValueTextEquals("method"u8);
                reader.Read();
                if (isMethod)
                {
                    return reader.TokenType == JsonTokenType.String && reader.ValueTextEquals(method);
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }

        return false;
    }

    /// <summary>The raw id of a request (has method and id), or null for notifications, responses and unreadable text.</summary>
    private static string? RequestIdOf(byte[] message)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(message);
            JsonElement root = document.RootElement;
            return root.ValueKind == JsonValueKind.Object && root.TryGetProperty("method", out _) && root.TryGetProperty("id", out JsonElement id)
                ? id.GetRawText()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>True when the message is a response (has an id and a result or error, no method).</summary>
    private static bool IsResponse(ReadOnlySequence<byte> payload)
    {
        var reader = new Utf8JsonReader(payload);
        bool hasId = false, hasOutcome = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("method"u8))
                {
                    return false;
                }

                hasId |= reader.ValueTextEquals("id"u8);
                hasOutcome |= reader.ValueTextEquals("result"u8) || reader.ValueTextEquals("error"u8);
                reader.Read();
                reader.Skip();
            }
        }
        catch (JsonException)
        {
            return false;
        }

        return hasId && hasOutcome;
    }

    private static string? ReadProtocolVersion(ReadOnlySequence<byte> payload)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(payload);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("result", out JsonElement result)
                && result.ValueKind == JsonValueKind.Object
                && result.TryGetProperty("protocolVersion", out JsonElement version)
                && version.ValueKind == JsonValueKind.String
                ? version.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Where a stream stands, for resuming it (HTML Living Standard §9.2.6): the last event id (an <c>id</c> field,
    /// empty resets it) and the reconnection time (a <c>retry</c> field of digits, milliseconds).
    /// </summary>
    private sealed class StreamCursor
    {
        public string? LastEventId { get; private set; }

        public TimeSpan Retry { get; private set; } = DefaultRetry;

        /// <summary>True once the server set the reconnection time (it expects to be reconnected to).</summary>
        public bool RetrySet { get; private set; }

        private bool _received;

        /// <summary>True when an event arrived since the last call (the connection made progress).</summary>
        public bool TakeReceived()
        {
            bool received = _received;
            _received = false;
            return received;
        }

        public void Read(in ReadOnlySequence<byte> sseEvent)
        {
            _received = true;
            var reader = new SequenceReader<byte>(sseEvent);
            while (reader.TryReadToAny(out ReadOnlySequence<byte> line, "\r\n"u8, advancePastDelimiter: false))
            {
                reader.TryRead(out byte terminator);
                if (terminator == (byte)'\r' && reader.TryPeek(out byte next) && next == (byte)'\n')
                {
                    reader.Advance(1);
                }

                if (line.IsEmpty)
                {
                    break;
                }

                ReadOnlySpan<byte> text = line.IsSingleSegment ? line.FirstSpan : line.ToArray();
                int colon = text.IndexOf((byte)':');
                ReadOnlySpan<byte> name = colon < 0 ? text : text[..colon];
                ReadOnlySpan<byte> value = colon < 0 ? default : text[(colon + 1)..];
                if (!value.IsEmpty && value[0] == (byte)' ')
                {
                    value = value[1..];
                }

                if (name.SequenceEqual("id"u8) && !value.Contains((byte)0))
                {
                    LastEventId = value.IsEmpty ? null : Encoding.UTF8.GetString(value);
                }
                else if (name.SequenceEqual("retry"u8) && !value.IsEmpty && !value.ContainsAnyExceptInRange((byte)'0', (byte)'9')
                    && int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int milliseconds))
                {
                    Retry = TimeSpan.FromMilliseconds(milliseconds);
                    RetrySet = true;
                }
            }
        }
    }
}

/// <summary>Log messages of <see cref="HttpUpstreamBridge"/>.</summary>
internal static partial class GatewayBridgeLog
{
    [LoggerMessage(EventId = 3101, Level = LogLevel.Warning, Message = "Upstream request failed: {Reason}")]
    public static partial void UpstreamFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Upstream answered HTTP {Status}")]
    public static partial void UpstreamStatus(ILogger logger, int status);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "The upstream ended MCP session {Session} (HTTP 404); starting a new one with the client's initialize")]
    public static partial void SessionEnded(ILogger logger, string session);

    [LoggerMessage(EventId = 3104, Level = LogLevel.Information, Message = "New upstream MCP session {Session}")]
    public static partial void Reinitialized(ILogger logger, string session);

    [LoggerMessage(EventId = 3105, Level = LogLevel.Error, Message = "No new upstream MCP session: {Reason}")]
    public static partial void ReinitializeFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3106, Level = LogLevel.Error, Message = "The upstream MCP server refused the gateway's credentials (HTTP {Status}); check --upstream-header")]
    public static partial void CredentialsRefused(ILogger logger, int status);

    [LoggerMessage(EventId = 3107, Level = LogLevel.Warning, Message = "Gave up an upstream event stream after {Attempts} reconnections without an event")]
    public static partial void StreamAbandoned(ILogger logger, int attempts);
}
