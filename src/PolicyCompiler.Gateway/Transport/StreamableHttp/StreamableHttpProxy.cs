using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// The Streamable HTTP gateway's endpoint (MCP basic/transports#streamable-http): every request to
/// the MCP path goes through here, one HTTP exchange in, one out.
/// <code>
///   client ─POST─(1) origin/host ─(2) grant ─(3) body ─(4) classify ─(5) headers ─(6) decide ─(7) forward ─▶ upstream
///     ▲                              │ 403 / 401 / 413 / 400 / blocked tools/call (200, isError)    │
///     └──────────────────────────────┘                                                              │
///   client ◀─(10) write + flush ◀─(9) filter tools/list, settle tools/call ◀─(8) JSON body or SSE events
/// </code>
/// (1) refuse foreign origins and hosts (DNS rebinding); (2) map the bearer token to a grant; (3) read
/// the one message of the body, refusing oversized ones; (4) classify it with the stdio gateway's
/// classifier (batches, duplicate keys, escapes); (5) check 2026-07-28's Mcp-Method/Mcp-Name against
/// the body; (6) decide a tools/call with the shared enforcer; (7) send it upstream with the client's
/// MCP headers (never its Authorization) plus the gateway's own; (8) read the answer as it arrives —
/// a JSON body (one message) or an SSE stream, event by event; (9) rewrite a tools/list result,
/// commit a call's counters; (10) pass each event on at once (a stream is never buffered whole).
/// GET (the server's SSE stream) and DELETE (end of session) take steps 1, 2, 7, 8–10.
/// </summary>
internal sealed partial class StreamableHttpProxy
{
    internal const string SessionHeader = "Mcp-Session-Id";
    internal const string ProtocolVersionHeader = "MCP-Protocol-Version";
    internal const string LastEventIdHeader = "Last-Event-ID";
    internal const string MethodHeader = "Mcp-Method";
    internal const string NameHeader = "Mcp-Name";

    // Carried from the client to the upstream as they are; everything else (Authorization, cookies) is not.
    private static readonly string[] ForwardedRequestHeaders = [SessionHeader, ProtocolVersionHeader, LastEventIdHeader, MethodHeader, NameHeader];

    private readonly HttpGatewayOptions _options;
    private readonly ToolCallEnforcer _enforcer;
    private readonly HttpMessageInvoker _upstream;
    private readonly Uri _upstreamUri;
    private readonly OriginPolicy _origins;
    private readonly SessionTable _sessions;
    private readonly GatewayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentBag<Scratch> _scratch = new();
    private readonly ChildProcessHandler? _children;

    public StreamableHttpProxy(HttpGatewayOptions options, ToolCallEnforcer enforcer, HttpMessageInvoker upstream, Uri upstreamUri, SessionTable sessions, GatewayMetrics metrics, ILogger logger, TimeProvider? time = null, ChildProcessHandler? children = null)
    {
        _children = children;
        _options = options;
        _enforcer = enforcer;
        _upstream = upstream;
        _upstreamUri = upstreamUri;
        _sessions = sessions;
        _metrics = metrics;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _origins = new OriginPolicy(options.AllowedOrigins, options.AllowedHosts);
    }

    /// <summary>Handles one HTTP request to the MCP endpoint.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        HttpRequest request = context.Request;
        if (!string.Equals(request.Path.Value, _options.Path, StringComparison.Ordinal))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        // Step 1: DNS-rebinding protection, before anything else is looked at.
        if (!_origins.IsOriginAllowed(request.Headers.Origin.Count > 0 ? request.Headers.Origin.ToString() : null) ||
            !_origins.IsHostAllowed(request.Host.Host))
        {
            HttpLog.OriginRefused(_logger, request.Headers.Origin.ToString(), request.Host.Value ?? string.Empty);
            await WriteErrorAsync(context, StatusCodes.Status403Forbidden, default, JsonRpcErrorCodes.InvalidRequest, "Forbidden: origin or host not allowed").ConfigureAwait(false);
            return;
        }

        // Step 2: who is calling.
        string grant = _options.DefaultGrant;
        if (_options.Grants is { } grants)
        {
            GrantCheck check = grants.Check(request.Headers.Authorization.Count > 0 ? request.Headers.Authorization.ToString() : null, _time.GetUtcNow(), out grant);
            if (check != GrantCheck.Granted)
            {
                HttpLog.Unauthorized(_logger, check.ToString());
                context.Response.Headers.WWWAuthenticate = check == GrantCheck.Missing
                    ? "Bearer realm=\"mcp\""
                    : check == GrantCheck.Expired
                        ? "Bearer realm=\"mcp\", error=\"invalid_token\", error_description=\"The token has expired\""
                        : "Bearer realm=\"mcp\", error=\"invalid_token\"";
                await WriteErrorAsync(context, StatusCodes.Status401Unauthorized, default, JsonRpcErrorCodes.InvalidRequest, "Unauthorized: a valid bearer token is required").ConfigureAwait(false);
                return;
            }
        }

        // Sessions belong to the grant that opened them; an unknown one is 404 (the client re-initializes).
        string session = string.Empty;
        if (request.Headers.TryGetValue(SessionHeader, out Microsoft.Extensions.Primitives.StringValues sessionHeader))
        {
            session = sessionHeader.ToString();
            if (!_sessions.TryGet(session, grant, out _))
            {
                await WriteErrorAsync(context, StatusCodes.Status404NotFound, default, JsonRpcErrorCodes.InvalidRequest, "Not Found: unknown or expired session").ConfigureAwait(false);
                return;
            }
        }

        if (HttpMethods.IsPost(request.Method))
        {
            await PostAsync(context, grant, session).ConfigureAwait(false);
        }
        else if (HttpMethods.IsGet(request.Method) || HttpMethods.IsDelete(request.Method))
        {
            await PassThroughAsync(context, grant, session).ConfigureAwait(false);
        }
        else
        {
            context.Response.Headers.Allow = "GET, POST, DELETE";
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
        }
    }

    /// <summary>Whether a Content-Type is <c>application/json</c> (parameters such as <c>charset</c> aside).</summary>
    internal static bool IsJsonMediaType(string? contentType)
    {
        if (contentType is null)
        {
            return false;
        }

        ReadOnlySpan<char> media = contentType;
        int parameters = media.IndexOf(';');
        if (parameters >= 0)
        {
            media = media[..parameters];
        }

        return media.Trim().Equals("application/json", StringComparison.OrdinalIgnoreCase);
    }

    private async Task PostAsync(HttpContext context, string grant, string session)
    {
        HttpRequest request = context.Request;
        CancellationToken aborted = context.RequestAborted;
        if (!IsJsonMediaType(request.ContentType))
        {
            // The transport's body is application/json. Refusing anything else also keeps browsers' "simple"
            // cross-site POSTs (text/plain, form encodings: no CORS preflight) out, should the Origin check ever be loosened.
            await WriteErrorAsync(context, StatusCodes.Status415UnsupportedMediaType, default, JsonRpcErrorCodes.InvalidRequest, "Unsupported Media Type: a POST body must be Content-Type: application/json").ConfigureAwait(false);
            return;
        }

        if (request.ContentLength > _options.MaxMessageBytes)
        {
            await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, default, JsonRpcErrorCodes.InvalidRequest, "Invalid Request: the message exceeds the gateway's size limit (--max-message-bytes)").ConfigureAwait(false);
            return;
        }

        // Step 3: the body is one JSON-RPC message; hold it (unconsumed) until it has been forwarded.
        PipeReader body = request.BodyReader;
        ReadResult read;
        while (true)
        {
            read = await body.ReadAsync(aborted).ConfigureAwait(false);
            if (read.Buffer.Length > _options.MaxMessageBytes)
            {
                body.AdvanceTo(read.Buffer.End);
                await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, default, JsonRpcErrorCodes.InvalidRequest, "Invalid Request: the message exceeds the gateway's size limit (--max-message-bytes)").ConfigureAwait(false);
                return;
            }

            if (read.IsCompleted || read.IsCanceled)
            {
                break;
            }

            body.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }

        ReadOnlySequence<byte> message = read.Buffer;
        _metrics.AddBytesIn(message.Length);
        Scratch scratch = Rent();
        try
        {
            // Step 4: classify, exactly as the stdio gateway does.
            MessageClassifier classifier = scratch.Classifier;
            ClassifyStatus status = classifier.Classify(message, strict: true);
            if (status != ClassifyStatus.Ok)
            {
                GatewayLog.ClientMessageRefused(_logger, status == ClassifyStatus.Empty ? "empty body" : classifier.Detail);
                int code = status switch
                {
                    ClassifyStatus.ParseError or ClassifyStatus.Empty => JsonRpcErrorCodes.ParseError,
                    ClassifyStatus.InvalidParams => JsonRpcErrorCodes.InvalidParams,
                    _ => JsonRpcErrorCodes.InvalidRequest,
                };
                RequestId errorId = status is ClassifyStatus.Batch or ClassifyStatus.ParseError or ClassifyStatus.Empty ? default : classifier.Id;
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, errorId, code, status == ClassifyStatus.Empty ? "Parse error: the body is empty" : classifier.Detail, scratch).ConfigureAwait(false);
                return;
            }

            // Step 5: the routing headers must name what the body does (2026-07-28).
            string? mismatch = McpHeaderCheck.Check(
                message,
                request.Headers.TryGetValue(MethodHeader, out Microsoft.Extensions.Primitives.StringValues method) ? method.ToString() : null,
                request.Headers.TryGetValue(NameHeader, out Microsoft.Extensions.Primitives.StringValues name) ? name.ToString() : null);
            if (mismatch is not null)
            {
                GatewayLog.ClientMessageRefused(_logger, mismatch);
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, classifier.Id, McpHeaderCheck.HeaderMismatch, mismatch, scratch).ConfigureAwait(false);
                return;
            }

            var exchange = new Exchange(classifier.Kind == MessageKind.Request ? classifier.Id : default, classifier.Method, grant, session);
            if (_enforcer.Approvals is { } approvals && MayBeApprovalTraffic(classifier, approvals, session)
                && HandleApprovalTraffic(context, approvals, message, classifier, exchange))
            {
                return; // an elicitation answer, or the cancellation of a held call (docs/approvals.md)
            }

            // Step 6: decide a tools/call.
            if (classifier.Kind == MessageKind.Request && classifier.Method == KnownMethod.ToolsCall)
            {
                EnforcedCall call = _enforcer.Decide(exchange.Id, classifier.ToolName, classifier.ArgumentsJson, grant, session, PinsFor(grant, session));
                if (!call.Forward && call.Decision.Kind == Policy.Runtime.DecisionKind.ApprovalRequired && _enforcer.Approvals is { } broker)
                {
                    // Held: this POST waits for the answer (docs/approvals.md); the body stays unconsumed, so an
                    // approved call is forwarded exactly as it arrived.
                    EnforcedCall? released = await HoldAsync(context, broker, message, exchange, call, scratch).ConfigureAwait(false);
                    if (released is null)
                    {
                        return;
                    }

                    call = released.Value;
                }

                if (!call.Forward)
                {
                    // The same answer the stdio gateway writes: a CallToolResult with isError (server/tools#error-handling).
                    context.Response.StatusCode = StatusCodes.Status200OK;
                    context.Response.ContentType = "application/json";
                    scratch.Replies.WriteBlocked(scratch.Buffer, exchange.Id, classifier.ToolName, call.Decision, call.Reason);
                    await WriteBufferAsync(context, scratch).ConfigureAwait(false);
                    return;
                }

                exchange.Pending = _enforcer.CreatePending(call, classifier.ToolName);
                exchange.HasPending = true;
            }

            // Step 7: forward.
            if (_children is not null && session.Length > 0)
            {
                // A stdio child per session (`-- COMMAND`): straight to the child, without HTTP message objects.
                await RelayChildAsync(context, _children, message, exchange, scratch).ConfigureAwait(false);
                return;
            }

            using var upstreamRequest = new HttpRequestMessage(HttpMethod.Post, _upstreamUri) { Content = new SequenceContent(message) };
            upstreamRequest.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            CopyRequestHeaders(request, upstreamRequest);
            await RelayAsync(context, upstreamRequest, exchange, scratch).ConfigureAwait(false);
        }
        finally
        {
            body.AdvanceTo(message.End);
            Return(scratch);
        }
    }

    private async Task PassThroughAsync(HttpContext context, string grant, string session)
    {
        HttpRequest request = context.Request;
        bool isDelete = HttpMethods.IsDelete(request.Method);
        using var upstreamRequest = new HttpRequestMessage(isDelete ? HttpMethod.Delete : HttpMethod.Get, _upstreamUri);
        CopyRequestHeaders(request, upstreamRequest);
        Scratch scratch = Rent();
        try
        {
            var exchange = new Exchange(default, KnownMethod.Other, grant, session);
            await RelayAsync(context, upstreamRequest, exchange, scratch).ConfigureAwait(false);
            if (isDelete && session.Length > 0 && context.Response.StatusCode is (>= 200 and < 300) or 404 or 405)
            {
                // Ended upstream (or unknown there, or the upstream does not end sessions): forget it here.
                _sessions.Remove(session);
            }
        }
        finally
        {
            Return(scratch);
        }
    }

    /// <summary>Steps 7–10: send <paramref name="upstreamRequest"/> and stream its answer back.</summary>
    private async Task RelayAsync(HttpContext context, HttpRequestMessage upstreamRequest, Exchange exchange, Scratch scratch)
    {
        CancellationToken aborted = context.RequestAborted;
        HttpResponse response = context.Response;
        HttpResponseMessage upstreamResponse;
        long sent = Stopwatch.GetTimestamp();
        try
        {
            upstreamResponse = await _upstream.SendAsync(upstreamRequest, aborted).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or (OperationCanceledException and not TaskCanceledException { CancellationToken.IsCancellationRequested: true }))
        {
            HttpLog.UpstreamUnreachable(_logger, e.Message);
            Settle(exchange, UpstreamOutcome.NoResponse, commit: false);
            await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.UpstreamClosed, "The upstream MCP server cannot be reached", scratch).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException)
        {
            // The client went away before the upstream answered; the call may still run upstream (a disconnect is not a cancellation).
            Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
            return;
        }

        using (upstreamResponse)
        {
            _metrics.RecordUpstreamLatency(ToolCallEnforcer.ElapsedNanoseconds(sent));
            int status = (int)upstreamResponse.StatusCode;

            // The upstream refusing the gateway's own credentials is the gateway's problem, not the client's:
            // passing 401 on would send the client to authenticate against a server it cannot see, so it is a 502
            // (a bad answer from upstream) with its own code; the upstream's WWW-Authenticate is not passed on.
            if (status is 401 or 403 && !ReferenceEquals(upstreamRequest.Method, HttpMethod.Delete))
            {
                HttpLog.UpstreamRefusedCredentials(_logger, status);
                Settle(exchange, UpstreamOutcome.Error, commit: false);
                await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.UpstreamUnauthorized, HttpUpstreamBridge.UpstreamRefusedCredentials(status), scratch).ConfigureAwait(false);
                return;
            }

            // An approval's elicitation may already have opened this POST's answer as an SSE stream (docs/approvals.md).
            bool ownStream = response.HasStarted;
            if (!ownStream)
            {
                response.StatusCode = status;
            }

            if (upstreamResponse.Headers.TryGetValues(SessionHeader, out IEnumerable<string>? sessionIds) && !ownStream)
            {
                foreach (string id in sessionIds)
                {
                    // basic/transports#session-management: the session id the server assigns on initialize.
                    if (exchange.Session.Length == 0 && id.Length > 0)
                    {
                        _sessions.Add(id, exchange.Grant).RememberClient(exchange.ClientElicitation, exchange.ClientName);
                    }

                    response.Headers[SessionHeader] = id;
                    break;
                }
            }

            if (upstreamResponse.Headers.TryGetValues("Allow", out IEnumerable<string>? allow))
            {
                response.Headers.Allow = string.Join(", ", allow);
            }

            string? mediaType = upstreamResponse.Content.Headers.ContentType?.MediaType;
            if (status is < 200 or >= 300)
            {
                // Refused upstream (400, 404 for an expired session, 405...): the call did not run.
                Settle(exchange, UpstreamOutcome.Error, commit: false);
                if (status == StatusCodes.Status404NotFound && exchange.Session.Length > 0)
                {
                    // basic/transports#session-management: the server ended the session (expired, restarted); the client
                    // starts a new one, so the gateway forgets this one now rather than at the idle timeout.
                    _sessions.Remove(exchange.Session);
                }
            }

            if (upstreamResponse.Content is ChildJsonContent childAnswer)
            {
                // A stdio child's answer (ChildProcessHandler): the message is in memory already, no stream to read.
                if (!ownStream)
                {
                    response.ContentType = "application/json";
                }

                try
                {
                    await RelayJsonMessageAsync(context, new ReadOnlySequence<byte>(childAnswer.Json), exchange, scratch).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (aborted.IsCancellationRequested)
                {
                    Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
                }

                return;
            }

            Stream upstreamBody = await upstreamResponse.Content.ReadAsStreamAsync(aborted).ConfigureAwait(false);
            try
            {
                if (string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase))
                {
                    if (!ownStream)
                    {
                        response.ContentType = "text/event-stream";
                        response.Headers.CacheControl = "no-cache";
                    }

                    await RelayEventsAsync(context, upstreamBody, exchange, scratch).ConfigureAwait(false);
                }
                else if (string.Equals(mediaType, "application/json", StringComparison.OrdinalIgnoreCase))
                {
                    if (!ownStream)
                    {
                        response.ContentType = "application/json";
                    }

                    await RelayJsonAsync(context, upstreamBody, exchange, scratch).ConfigureAwait(false);
                }
                else if (ownStream)
                {
                    // Neither JSON nor SSE cannot be carried on our stream: the call gets an error event.
                    Settle(exchange, UpstreamOutcome.Error, commit: true);
                    await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.UpstreamClosed, "The upstream MCP server answered with neither JSON nor an event stream", scratch).ConfigureAwait(false);
                }
                else
                {
                    if (mediaType is not null)
                    {
                        response.ContentType = upstreamResponse.Content.Headers.ContentType!.ToString();
                    }

                    await CopyAsync(context, upstreamBody).ConfigureAwait(false);
                    Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
                }
            }
            catch (OperationCanceledException) when (aborted.IsCancellationRequested)
            {
                Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
            }
            finally
            {
                await upstreamBody.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Steps 7–10 with a stdio child per session, for a POST in an open session (initialize, GET and DELETE take
    /// <see cref="RelayAsync"/> through the same handler): the answer is exactly what <see cref="RelayAsync"/>
    /// makes of the handler's <see cref="HttpResponseMessage"/>, statuses, headers, settlement and all.
    /// </summary>
    private async Task RelayChildAsync(HttpContext context, ChildProcessHandler children, ReadOnlySequence<byte> message, Exchange exchange, Scratch scratch)
    {
        CancellationToken aborted = context.RequestAborted;
        HttpResponse response = context.Response;
        long sent = Stopwatch.GetTimestamp();
        ChildAnswer answer;
        try
        {
            answer = await children.PostAsync(exchange.Session, message, aborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The client went away before the child answered; the call may still run (a disconnect is not a cancellation).
            Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
            return;
        }

        _metrics.RecordUpstreamLatency(ToolCallEnforcer.ElapsedNanoseconds(sent));
        bool ownStream = response.HasStarted; // an approval's elicitation opened this POST's answer as an SSE stream
        int status = (int)answer.Status;
        if (!ownStream)
        {
            response.StatusCode = status;
        }

        try
        {
            if (status != StatusCodes.Status200OK)
            {
                // 202 (a notification or response was written), or the child refused (404: no such session; 502: it exited).
                bool accepted = status == StatusCodes.Status202Accepted;
                if (!accepted)
                {
                    Settle(exchange, UpstreamOutcome.Error, commit: false);
                    if (status == StatusCodes.Status404NotFound)
                    {
                        _sessions.Remove(exchange.Session);
                    }
                }

                if (ownStream)
                {
                    Settle(exchange, UpstreamOutcome.Error, commit: true);
                    await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.UpstreamClosed, "The upstream MCP server answered with neither JSON nor an event stream", scratch).ConfigureAwait(false);
                }
                else
                {
                    Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
                }

                return;
            }

            if (!ownStream)
            {
                response.Headers[SessionHeader] = exchange.Session;
            }

            if (answer.Events is { } events)
            {
                await using (events.ConfigureAwait(false))
                {
                    if (!ownStream)
                    {
                        response.ContentType = "text/event-stream";
                        response.Headers.CacheControl = "no-cache";
                    }

                    await RelayEventsAsync(context, events, exchange, scratch).ConfigureAwait(false);
                }

                return;
            }

            if (!ownStream)
            {
                response.ContentType = "application/json";
            }

            await RelayJsonMessageAsync(context, new ReadOnlySequence<byte>(answer.Response.Json), exchange, scratch).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
        }
    }

    /// <summary>Step 8 for a JSON answer: one message, read whole (bounded), inspected, written.</summary>
    private async Task RelayJsonAsync(HttpContext context, Stream upstreamBody, Exchange exchange, Scratch scratch)
    {
        PipeReader reader = PipeReader.Create(upstreamBody, new StreamPipeReaderOptions(leaveOpen: true));
        try
        {
            ReadResult read;
            while (true)
            {
                try
                {
                    read = await reader.ReadAsync(context.RequestAborted).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    HttpLog.UpstreamStreamFailed(_logger, e.Message);
                    Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
                    await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.UpstreamClosed, UpstreamBrokeMessage, scratch).ConfigureAwait(false);
                    return;
                }

                if (read.Buffer.Length > _options.MaxMessageBytes)
                {
                    GatewayLog.UpstreamMessageOversized(_logger, _options.MaxMessageBytes);
                    Settle(exchange, UpstreamOutcome.Error, commit: true);
                    await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.ResponseTooLarge, "The upstream server's response exceeds the gateway's size limit (--max-message-bytes)", scratch).ConfigureAwait(false);
                    return;
                }

                if (read.IsCompleted)
                {
                    break;
                }

                reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            }

            ReadOnlySequence<byte> message = read.Buffer;
            InspectJson(context, message, exchange, scratch);
            reader.AdvanceTo(message.End);
            SetContentLength(context, scratch);
            await WriteBufferAsync(context, scratch).ConfigureAwait(false);
            Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Step 8 for a JSON answer already in memory (a stdio child's): bounded, inspected, written.</summary>
    private async Task RelayJsonMessageAsync(HttpContext context, ReadOnlySequence<byte> message, Exchange exchange, Scratch scratch)
    {
        if (message.Length > _options.MaxMessageBytes)
        {
            GatewayLog.UpstreamMessageOversized(_logger, _options.MaxMessageBytes);
            Settle(exchange, UpstreamOutcome.Error, commit: true);
            await WriteErrorAsync(context, StatusCodes.Status502BadGateway, exchange.Id, JsonRpcErrorCodes.ResponseTooLarge, "The upstream server's response exceeds the gateway's size limit (--max-message-bytes)", scratch).ConfigureAwait(false);
            return;
        }

        InspectJson(context, message, exchange, scratch);
        SetContentLength(context, scratch);
        await WriteBufferAsync(context, scratch).ConfigureAwait(false);
        Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
    }

    /// <summary>
    /// A JSON answer is written in one piece, so its length is known: sent as Content-Length, not chunked
    /// (no chunk framing to write, and the client reads one body of known size).
    /// </summary>
    private static void SetContentLength(HttpContext context, Scratch scratch)
    {
        if (!context.Response.HasStarted && scratch.Buffer.WrittenCount > 0)
        {
            context.Response.ContentLength = scratch.Buffer.WrittenCount;
        }
    }

    /// <summary>Puts a JSON answer into the scratch buffer: inspected (a call settled, a tools/list filtered), as an event on our own stream.</summary>
    private void InspectJson(HttpContext context, in ReadOnlySequence<byte> message, Exchange exchange, Scratch scratch)
    {
        if (!Inspect(message, exchange, scratch))
        {
            SequenceWriter.Write(scratch.Buffer, message);
        }

        if (context.Response.HasStarted)
        {
            WrapBufferAsEvent(scratch); // our own SSE stream (an approval's elicitation opened it)
        }
    }

    private const string UpstreamBrokeMessage = "The upstream MCP server closed the connection before answering this request";

    /// <summary>Steps 8–10 for an SSE answer: event by event, each written and flushed as soon as it is complete.</summary>
    private async Task RelayEventsAsync(HttpContext context, Stream upstreamBody, Exchange exchange, Scratch scratch)
    {
        PipeReader reader = PipeReader.Create(upstreamBody, new StreamPipeReaderOptions(leaveOpen: true));
        CancellationToken aborted = context.RequestAborted;

        // The client sees the response headers at once (a GET stream may stay quiet for minutes). Kestrel's
        // StartAsync only buffers them; the flush puts them on the wire.
        await context.Response.StartAsync(aborted).ConfigureAwait(false);
        await context.Response.BodyWriter.FlushAsync(aborted).ConfigureAwait(false);
        try
        {
            while (true)
            {
                ReadResult read;
                try
                {
                    read = await reader.ReadAsync(aborted).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    // The upstream broke the stream: whoever still waits for an answer gets an error event.
                    HttpLog.UpstreamStreamFailed(_logger, e.Message);
                    if (exchange.Id.HasValue && !exchange.Answered)
                    {
                        Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
                        WriteErrorEvent(scratch, exchange.Id, JsonRpcErrorCodes.UpstreamClosed, UpstreamBrokeMessage);
                        await WriteBufferAsync(context, scratch).ConfigureAwait(false);
                    }

                    return;
                }

                ReadOnlySequence<byte> buffer = read.Buffer;
                try
                {
                    while (SseEventFramer.TryReadEvent(ref buffer, read.IsCompleted, out ReadOnlySequence<byte> sseEvent))
                    {
                        RelayEvent(sseEvent, exchange, scratch);
                    }

                    if (buffer.Length > _options.MaxMessageBytes + 1024)
                    {
                        // An event too large to inspect cannot be passed on unread (it could be a tools/list result).
                        GatewayLog.UpstreamMessageOversized(_logger, _options.MaxMessageBytes);
                        if (exchange.Id.HasValue && !exchange.Answered)
                        {
                            Settle(exchange, UpstreamOutcome.Error, commit: true);
                            WriteErrorEvent(scratch, exchange.Id, JsonRpcErrorCodes.ResponseTooLarge, "The upstream server's response exceeds the gateway's size limit (--max-message-bytes)");
                        }

                        await WriteBufferAsync(context, scratch).ConfigureAwait(false);
                        return;
                    }
                }
                finally
                {
                    reader.AdvanceTo(buffer.Start, buffer.End);
                }

                if (scratch.Buffer.WrittenCount > 0)
                {
                    await WriteBufferAsync(context, scratch).ConfigureAwait(false);
                }

                if (read.IsCompleted)
                {
                    // A stream that ends without the answer may be resumed by the client (GET + Last-Event-ID);
                    // the call reached the server, so its counters stay taken.
                    Settle(exchange, UpstreamOutcome.NoResponse, commit: true);
                    return;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Step 9 for one event: inspect its data and write it on, rewritten when a tools/list result loses tools.</summary>
    private void RelayEvent(in ReadOnlySequence<byte> sseEvent, Exchange exchange, Scratch scratch)
    {
        scratch.Joined.ResetWrittenCount();
        int dataLines = SseEventFramer.ReadData(sseEvent, scratch.Joined, out ReadOnlySequence<byte> data, out bool otherType);
        if (dataLines == 0 || otherType)
        {
            SequenceWriter.Write(scratch.Buffer, sseEvent);
            return;
        }

        ReadOnlySequence<byte> message = dataLines == 1 ? data : new ReadOnlySequence<byte>(scratch.Joined.WrittenMemory);
        scratch.Rewritten.ResetWrittenCount();
        if (!Inspect(message, exchange, scratch, scratch.Rewritten))
        {
            SequenceWriter.Write(scratch.Buffer, sseEvent);
            return;
        }

        // The same event with the filtered message as its one data line (JSON has no raw newlines).
        SseEventFramer.WriteNonDataLines(sseEvent, scratch.Buffer);
        ReadOnlySpan<byte> rewritten = scratch.Rewritten.WrittenSpan;
        if (rewritten.Length > 0 && rewritten[^1] == (byte)'\n')
        {
            rewritten = rewritten[..^1];
        }

        scratch.Buffer.Write("data: "u8);
        scratch.Buffer.Write(rewritten);
        scratch.Buffer.Write("\n\n"u8);
    }

    /// <summary>
    /// Settles the exchange's call when <paramref name="message"/> answers it, and writes a filtered
    /// tools/list result to <paramref name="output"/> (default: the scratch buffer). False when the
    /// message is to be forwarded unchanged.
    /// </summary>
    private bool Inspect(in ReadOnlySequence<byte> message, Exchange exchange, Scratch scratch, IBufferWriter<byte>? output = null)
    {
        MessageClassifier classifier = scratch.UpstreamClassifier;
        if (classifier.Classify(message, strict: false) != ClassifyStatus.Ok || classifier.Kind != MessageKind.Response || !classifier.Id.HasValue)
        {
            return false;
        }

        bool answersExchange = exchange.Id.HasValue && classifier.Id.Equals(exchange.Id);
        if (answersExchange)
        {
            exchange.Answered = true;
            if (exchange.Method == KnownMethod.ToolsCall)
            {
                UpstreamOutcome outcome = classifier.HasError ? UpstreamOutcome.Error
                    : _enforcer.AuditsOutcomes && ToolResult.IsError(message, classifier.ResultStart, classifier.ResultLength) ? UpstreamOutcome.ToolError
                    : UpstreamOutcome.Result;
                Settle(exchange, outcome, commit: true);
                return false;
            }
        }

        // A tools/list answer is filtered; so is any other response with a result arriving where the gateway
        // cannot tell what it answers (a resumed or GET stream): fail closed, a "tools" array is cut down.
        bool filter = answersExchange ? exchange.Method == KnownMethod.ToolsList : exchange.Method != KnownMethod.ToolsCall || !exchange.Id.HasValue;
        if (!filter || !classifier.HasResult || _enforcer.IsShadow())
        {
            return false;
        }

        try
        {
            return scratch.Filter.TryFilter(message, classifier.ResultStart, classifier.ResultLength, _enforcer.Evaluator, output ?? scratch.Buffer, out _, PinsFor(exchange.Grant, exchange.Session));
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    private void Settle(Exchange exchange, UpstreamOutcome outcome, bool commit)
    {
        if (!exchange.HasPending)
        {
            return;
        }

        exchange.HasPending = false;
        _enforcer.Settle(ref exchange.Pending, exchange.Id, outcome, commit, exchange.Grant, exchange.Session);
    }

    private void CopyRequestHeaders(HttpRequest request, HttpRequestMessage upstreamRequest)
    {
        upstreamRequest.Headers.TryAddWithoutValidation("Accept", request.Headers.Accept.Count > 0 ? request.Headers.Accept.ToString() : "application/json, text/event-stream");
        foreach (string header in ForwardedRequestHeaders)
        {
            if (request.Headers.TryGetValue(header, out Microsoft.Extensions.Primitives.StringValues value))
            {
                upstreamRequest.Headers.TryAddWithoutValidation(header, value.ToString());
            }
        }

        // The gateway's own upstream credentials (--upstream-header); never the client's (no token passthrough).
        foreach (KeyValuePair<string, string> header in _options.UpstreamHeaders)
        {
            upstreamRequest.Headers.Remove(header.Key);
            upstreamRequest.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
    }

    private async Task CopyAsync(HttpContext context, Stream upstreamBody)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int count;
            while ((count = await upstreamBody.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                await context.Response.Body.WriteAsync(buffer.AsMemory(0, count), context.RequestAborted).ConfigureAwait(false);
                _metrics.AddBytesOut(count);
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            HttpLog.UpstreamStreamFailed(_logger, e.Message);
            context.Abort();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void WriteErrorEvent(Scratch scratch, in RequestId id, int code, string message)
    {
        scratch.Rewritten.ResetWrittenCount();
        scratch.Replies.WriteError(scratch.Rewritten, id, code, message);
        ReadOnlySpan<byte> json = scratch.Rewritten.WrittenSpan;
        scratch.Buffer.Write("event: message\ndata: "u8);
        scratch.Buffer.Write(json[..^1]);
        scratch.Buffer.Write("\n\n"u8);
    }

    private async Task WriteErrorAsync(HttpContext context, int status, RequestId id, int code, string message, Scratch? scratch = null)
    {
        if (context.Response.HasStarted)
        {
            if (id.HasValue && context.Items.ContainsKey(OwnEventStreamKey))
            {
                // Our own SSE stream (an approval's elicitation opened it): the error is its last event.
                Scratch events = scratch ?? Rent();
                events.Rewritten.ResetWrittenCount();
                events.Replies.WriteError(events.Rewritten, id, code, message);
                events.Buffer.ResetWrittenCount();
                WriteEvent(events.Buffer, events.Rewritten.WrittenSpan);
                await WriteBufferAsync(context, events).ConfigureAwait(false);
                if (scratch is null)
                {
                    Return(events);
                }
            }

            return;
        }

        Scratch owned = scratch ?? Rent();
        try
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            owned.Buffer.ResetWrittenCount();
            owned.Replies.WriteError(owned.Buffer, id, code, message);
            await WriteBufferAsync(context, owned).ConfigureAwait(false);
        }
        finally
        {
            if (scratch is null)
            {
                Return(owned);
            }
        }
    }

    private async Task WriteBufferAsync(HttpContext context, Scratch scratch)
    {
        ReadOnlyMemory<byte> bytes = scratch.Buffer.WrittenMemory;
        scratch.Buffer.ResetWrittenCount();
        if (bytes.IsEmpty)
        {
            return;
        }

        _metrics.AddBytesOut(bytes.Length);
        await context.Response.BodyWriter.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
    }

    private Scratch Rent() => _scratch.TryTake(out Scratch? scratch) ? scratch : new Scratch();

    private void Return(Scratch scratch)
    {
        scratch.Buffer.ResetWrittenCount();
        if (scratch.Buffer.Capacity <= 1024 * 1024)
        {
            _scratch.Add(scratch);
        }
    }

    /// <summary>What one POST (or GET/DELETE) is waiting for; shared by the relay steps, so its call is settled once.</summary>
    /// <summary>
    /// The pin state of a request's session (docs/scan.md, "Pinning"); null when the policy pins nothing.
    /// A request without a session (2026-07-28 has none) gets a fresh state, so a pinned tool is
    /// refused as unverified there: fail closed, since no listing can vouch for the next request.
    /// </summary>
    private PinVerifier? PinsFor(string grant, string session)
    {
        if (_enforcer.Evaluator.Policy.Pins.Count == 0)
        {
            return null;
        }

        return session.Length > 0 && _sessions.TryGet(session, grant, out HttpSession? known) ? known!.Pins(_logger) : new PinVerifier(_logger);
    }

    private sealed class Exchange(RequestId id, KnownMethod method, string grant, string session)
    {
        public readonly RequestId Id = id;
        public readonly KnownMethod Method = method;
        public readonly string Grant = grant;
        public readonly string Session = session;
        public PendingRequest Pending;
        public bool HasPending;
        public bool Answered;
        public bool ClientElicitation; // an initialize that declared form elicitation (docs/approvals.md)
        public string? ClientName;
    }

    /// <summary>Per-request working objects, pooled: a request allocates none of them in steady state.</summary>
    private sealed class Scratch
    {
        public MessageClassifier Classifier { get; } = new();
        public MessageClassifier UpstreamClassifier { get; } = new();
        public ReplyWriter Replies { get; } = new();
        public ToolsListFilter Filter { get; } = new();
        public ArrayBufferWriter<byte> Buffer { get; } = new(1024);
        public ArrayBufferWriter<byte> Joined { get; } = new(256);
        public ArrayBufferWriter<byte> Rewritten { get; } = new(256);
    }

    /// <summary>A request body that is the client's bytes, segment by segment (no copy).</summary>
    internal sealed class SequenceContent(ReadOnlySequence<byte> body) : HttpContent
    {
        /// <summary>The bytes (valid while the request is being sent); <see cref="ChildProcessHandler"/> writes them to the child as they are.</summary>
        public ReadOnlySequence<byte> Body => body;

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            await SerializeToStreamAsync(stream, context, CancellationToken.None).ConfigureAwait(false);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            foreach (ReadOnlyMemory<byte> segment in body)
            {
                await stream.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = body.Length;
            return true;
        }
    }
}
