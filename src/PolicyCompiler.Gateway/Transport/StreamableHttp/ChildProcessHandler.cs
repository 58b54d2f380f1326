using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Transport.Stdio;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// <c>GATEWAY http --listen … -- COMMAND [ARGS...]</c> (docs/http.md): the Streamable HTTP gateway's upstream
/// is a stdio server started once per MCP session. It is an <see cref="HttpMessageHandler"/> under the
/// gateway's upstream client, so <see cref="StreamableHttpProxy"/> enforces exactly as for a URL: an initialize
/// POST starts a child and names the session, a request POST is written as a line and answered with the line
/// that carries its id (application/json), notifications and responses get 202, DELETE or
/// <see cref="IdleTimeout"/> of disuse ends the child. Messages the child sends on its own (progress,
/// logging, its requests) have no stream to go to (no GET stream: 405) and are dropped.
/// </summary>
internal sealed class ChildProcessHandler : HttpMessageHandler
{
    private readonly string _command;
    private readonly IReadOnlyList<string> _arguments;
    private readonly TimeSpan _grace;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, ChildSession> _sessions = new(StringComparer.Ordinal);
    private readonly Timer _reaper;

    public ChildProcessHandler(string command, IReadOnlyList<string> arguments, TimeSpan idleTimeout, TimeSpan grace, ILogger logger)
    {
        _command = command;
        _arguments = arguments;
        IdleTimeout = idleTimeout;
        _grace = grace;
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
            if (sessionId is not null && _sessions.TryRemove(sessionId, out ChildSession? ended))
            {
                await ended.DisposeAsync().ConfigureAwait(false);
            }

            return new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request };
        }

        if (request.Method != HttpMethod.Post || request.Content is null)
        {
            return new HttpResponseMessage(HttpStatusCode.MethodNotAllowed) { RequestMessage = request };
        }

        byte[] message = await request.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        (string? id, bool isInitialize) = ReadRequest(message);
        if (session is null)
        {
            if (!isInitialize)
            {
                return new HttpResponseMessage(HttpStatusCode.BadRequest) { RequestMessage = request };
            }

            try
            {
                session = ChildSession.Start(_command, _arguments, _grace, _logger);
            }
            catch (Win32Exception e)
            {
                GatewayBridgeLog.UpstreamFailed(_logger, $"cannot start '{_command}': {e.Message}");
                return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request };
            }

            sessionId = Guid.NewGuid().ToString("N");
            _sessions[sessionId] = session;
        }

        session.Touch();
        try
        {
            if (id is null)
            {
                await session.WriteAsync(message, cancellationToken).ConfigureAwait(false);
                return new HttpResponseMessage(HttpStatusCode.Accepted) { RequestMessage = request };
            }

            byte[] answer = await session.RequestAsync(id, message, cancellationToken).ConfigureAwait(false);
            session.Touch();
            var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new ByteArrayContent(answer) };
            response.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            response.Headers.TryAddWithoutValidation("Mcp-Session-Id", sessionId);
            return response;
        }
        catch (IOException e)
        {
            // The child exited: the gateway answers the pending request as an upstream failure.
            GatewayBridgeLog.UpstreamFailed(_logger, e.Message);
            if (_sessions.TryRemove(sessionId!, out ChildSession? gone))
            {
                await gone.DisposeAsync().ConfigureAwait(false);
            }

            return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request };
        }
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

    /// <summary>The raw id of a request (null for notifications and responses), and whether it is initialize.</summary>
    private static (string? Id, bool IsInitialize) ReadRequest(byte[] message)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(message);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("method", out JsonElement method))
            {
                return (null, false);
            }

            bool initialize = method.ValueKind == JsonValueKind.String && method.ValueEquals("initialize"u8);
            return root.TryGetProperty("id", out JsonElement id) ? (id.GetRawText(), initialize) : (null, initialize);
        }
        catch (JsonException)
        {
            return (null, false);
        }
    }

    /// <summary>One child: its stdin, a loop reading its stdout, and the requests waiting for their answer.</summary>
    private sealed class ChildSession : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly IDisposable _keeper;
        private readonly TimeSpan _grace;
        private readonly Stream _stdin;
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private readonly ConcurrentDictionary<string, TaskCompletionSource<byte[]>> _pending = new(StringComparer.Ordinal);
        private readonly Task _reading;
        private long _lastUsed = Environment.TickCount64;
        private int _disposed;

        private ChildSession(Process process, IDisposable keeper, TimeSpan grace, ILogger logger)
        {
            _process = process;
            _keeper = keeper;
            _grace = grace;
            _stdin = process.StandardInput.BaseStream;
            _reading = ReadAsync(process.StandardOutput, logger);
        }

        public long LastUsed => Interlocked.Read(ref _lastUsed);

        public bool Busy => !_pending.IsEmpty;

        public static ChildSession Start(string command, IReadOnlyList<string> arguments, TimeSpan grace, ILogger logger)
        {
            // The stdio gateway's child start: on Linux through the launcher, so children die with the gateway.
            ProcessStartInfo startInfo = ParentDeathLauncher.CreateUpstreamStartInfo(command, arguments);
            Process process = ParentDeathLauncher.Start(startInfo, out IDisposable keeper);
            return new ChildSession(process, keeper, grace, logger);
        }

        public void Touch() => Interlocked.Exchange(ref _lastUsed, Environment.TickCount64);

        public async Task WriteAsync(byte[] message, CancellationToken cancellationToken)
        {
            await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await _stdin.WriteAsync(message, cancellationToken).ConfigureAwait(false);
                _stdin.WriteByte((byte)'\n');
                await _stdin.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }
        }

        public async Task<byte[]> RequestAsync(string id, byte[] message, CancellationToken cancellationToken)
        {
            var answer = new TaskCompletionSource<byte[]>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending[id] = answer;
            try
            {
                if (_reading.IsCompleted)
                {
                    throw new IOException("The upstream server has exited.");
                }

                await WriteAsync(message, cancellationToken).ConfigureAwait(false);
                return await answer.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _pending.TryRemove(id, out _);
            }
        }

        private async Task ReadAsync(StreamReader stdout, ILogger logger)
        {
            try
            {
                while (await stdout.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    byte[] bytes = System.Text.Encoding.UTF8.GetBytes(line);
                    if (ResponseId(bytes) is { } id && _pending.TryRemove(id, out TaskCompletionSource<byte[]>? waiting))
                    {
                        waiting.TrySetResult(bytes);
                    }
                }
            }
            catch (IOException e)
            {
                GatewayBridgeLog.UpstreamFailed(logger, e.Message);
            }
            finally
            {
                foreach (TaskCompletionSource<byte[]> waiting in _pending.Values)
                {
                    waiting.TrySetException(new IOException("The upstream server has exited."));
                }
            }
        }

        private static string? ResponseId(byte[] line)
        {
            try
            {
                using JsonDocument document = JsonDocument.Parse(line);
                JsonElement root = document.RootElement;
                return root.ValueKind == JsonValueKind.Object && !root.TryGetProperty("method", out _) && root.TryGetProperty("id", out JsonElement id)
                    ? id.GetRawText()
                    : null;
            }
            catch (JsonException)
            {
                return null;
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
            _keeper.Dispose();
            _writeLock.Dispose();
        }
    }
}
