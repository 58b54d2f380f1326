using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>What <c>/readyz</c> found: ready or not, and why, in words for the operator.</summary>
/// <param name="Ready">The gateway can serve MCP calls now.</param>
/// <param name="Detail">What was checked and what came back.</param>
internal readonly record struct ProbeResult(bool Ready, string Detail);

/// <summary>
/// The admin listener's <c>/readyz</c>: can the gateway serve MCP now? Reachability alone is not the question
/// (a proxy, a login page or a server refusing the gateway's credentials all "answer HTTP"), so the upstream is
/// asked the one thing every MCP server must answer: an <c>initialize</c> (basic/lifecycle), sent like any
/// forwarded request, with the gateway's <c>--upstream-header</c>s. Ready means a JSON-RPC initialize result came
/// back; the session it may have opened is DELETEd at once (basic/transports#session-management), and no
/// <c>notifications/initialized</c> follows, so the server never treats the probe as a client.
/// With stdio children (<c>http -- COMMAND</c>) the same request goes to the child-per-session handler: a running
/// child is enough, and with none the probe starts one (the command can be started and answers initialize) and
/// the DELETE ends it. A success is remembered for a few seconds and concurrent probes share one exchange, so a
/// busy prober does not become a stream of upstream sessions (or child processes).
/// </summary>
internal sealed class UpstreamProbe(HttpMessageInvoker upstream, Uri upstreamUri, IReadOnlyList<KeyValuePair<string, string>> upstreamHeaders, Func<int>? runningChildren, TimeProvider time)
{
    /// <summary>How long one probe may take.</summary>
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    /// <summary>How long a success stands before the upstream is asked again.</summary>
    internal static readonly TimeSpan SuccessLifetime = TimeSpan.FromSeconds(5);

    private const string ProbeId = "policycompiler-readyz";
    private const int MaxAnswerBytes = 1 << 20;

    private static readonly byte[] InitializeRequest = Encoding.UTF8.GetBytes(
        "{\"jsonrpc\":\"2.0\",\"id\":\"" + ProbeId + "\",\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
        + "\"clientInfo\":{\"name\":\"policycompiler-readyz\",\"version\":\"1\"}}}");

    private readonly Lock _gate = new();
    private Task<ProbeResult>? _probe;
    private long _succeededAt;

    /// <summary>The current answer: a recent success, the probe already running, or a new probe.</summary>
    public Task<ProbeResult> CheckAsync()
    {
        lock (_gate)
        {
            if (_probe is { IsCompletedSuccessfully: true } done
                && (!done.Result.Ready || time.GetElapsedTime(_succeededAt) >= SuccessLifetime))
            {
                _probe = null; // a failure is never reused: the next probe asks again
            }

            return _probe ??= ProbeAsync();
        }
    }

    private async Task<ProbeResult> ProbeAsync()
    {
        ProbeResult result = await AskAsync().ConfigureAwait(false);
        if (result.Ready)
        {
            _succeededAt = time.GetTimestamp();
        }

        return result;
    }

    private async Task<ProbeResult> AskAsync()
    {
        if (runningChildren?.Invoke() is int children and > 0)
        {
            return new ProbeResult(true, $"{children} upstream server process(es) running");
        }

        using var timeout = new CancellationTokenSource(Timeout);
        string? session = null;
        string? version = null;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, upstreamUri) { Content = new ByteArrayContent(InitializeRequest) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            foreach (KeyValuePair<string, string> header in upstreamHeaders)
            {
                request.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            using HttpResponseMessage response = await upstream.SendAsync(request, timeout.Token).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                return new ProbeResult(false, $"the upstream refused the gateway's credentials (HTTP {status})");
            }

            if (!response.IsSuccessStatusCode)
            {
                return new ProbeResult(false, $"the upstream answered initialize with HTTP {status}");
            }

            session = response.Headers.TryGetValues(StreamableHttpProxy.SessionHeader, out IEnumerable<string>? ids) ? ids.FirstOrDefault() : null;
            version = await ReadProtocolVersionAsync(response, timeout.Token).ConfigureAwait(false);
            return version is null
                ? new ProbeResult(false, "the upstream's answer to initialize is not an MCP initialize result")
                : new ProbeResult(true, $"the upstream answered initialize (protocol {version})");
        }
        catch (OperationCanceledException)
        {
            return new ProbeResult(false, $"the upstream did not answer initialize within {Timeout.TotalSeconds:F0} s");
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return new ProbeResult(false, "the upstream cannot be reached: " + e.Message);
        }
        finally
        {
            if (session is not null)
            {
                await DeleteAsync(session, version).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The protocolVersion of the probe's initialize result, from a JSON body or the SSE event that carries it.</summary>
    private static async Task<string?> ReadProtocolVersionAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        Stream body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        if (!string.Equals(response.Content.Headers.ContentType?.MediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase))
        {
            var buffer = new MemoryStream();
            await body.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            return buffer.Length > MaxAnswerBytes ? null : ProtocolVersionOf(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
        }

        // A stream may stay open after the result (or carry notifications first): read events until the result.
        using var reader = new StreamReader(body, Encoding.UTF8);
        long read = 0;
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line && (read += line.Length) < MaxAnswerBytes)
        {
            if (line.StartsWith("data:", StringComparison.Ordinal) && ProtocolVersionOf(Encoding.UTF8.GetBytes(line[5..])) is { } version)
            {
                return version;
            }
        }

        return null;
    }

    private static string? ProtocolVersionOf(ReadOnlyMemory<byte> message)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(message);
            JsonElement root = document.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("id", out JsonElement id) && id.ValueKind == JsonValueKind.String && id.ValueEquals(ProbeId)
                && root.TryGetProperty("result", out JsonElement result) && result.ValueKind == JsonValueKind.Object
                && result.TryGetProperty("protocolVersion", out JsonElement version) && version.ValueKind == JsonValueKind.String
                ? version.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Ends the probe's session; a failure changes nothing (the server expires it).</summary>
    private async Task DeleteAsync(string session, string? version)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        using var request = new HttpRequestMessage(HttpMethod.Delete, upstreamUri);
        request.Headers.TryAddWithoutValidation(StreamableHttpProxy.SessionHeader, session);
        if (version is not null)
        {
            request.Headers.TryAddWithoutValidation(StreamableHttpProxy.ProtocolVersionHeader, version);
        }

        foreach (KeyValuePair<string, string> header in upstreamHeaders)
        {
            request.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        try
        {
            using HttpResponseMessage response = await upstream.SendAsync(request, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
        }
    }
}
