using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace PolicyCompiler.EndToEnd.Tests.Infrastructure;

/// <summary>
/// A gateway process driven with raw newline-delimited JSON, for what an SDK client would never send
/// (duplicate keys, batches, escapes, malformed and oversized lines).
/// </summary>
internal sealed class RawSession : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly Task _pump;
    private readonly Task<string> _stderr;

    private RawSession(Process process)
    {
        _process = process;
        _pump = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line) _lines.Writer.TryWrite(line);
            _lines.Writer.TryComplete();
        });
        _stderr = process.StandardError.ReadToEndAsync();
    }

    public Process Process => _process;

    public static RawSession Start(string gateway, IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var startInfo = new ProcessStartInfo(gateway)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) startInfo.ArgumentList.Add(a);
        if (environment is not null)
        {
            foreach (var (k, v) in environment) startInfo.Environment[k] = v;
        }
        return new RawSession(Process.Start(startInfo)!);
    }

    public async Task SendAsync(string line)
    {
        await _process.StandardInput.WriteAsync(line + "\n");
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Reads messages until one has the given id (other messages are returned in <paramref name="skipped"/>).</summary>
    public async Task<JsonObject> ReadResponseAsync(JsonNode id, List<JsonObject>? skipped = null, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            string line;
            try
            {
                line = await _lines.Reader.ReadAsync(cts.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                throw new TimeoutException($"no response with id {id.ToJsonString()}; gateway stderr so far unavailable", e);
            }
            var message = JsonNode.Parse(line)!.AsObject();
            bool isResponse = message.ContainsKey("result") || message.ContainsKey("error");
            if (isResponse && JsonNode.DeepEquals(message["id"], id)) return message;
            skipped?.Add(message);
        }
    }

    /// <summary>Initializes the session (initialize + initialized).</summary>
    public async Task InitializeAsync()
    {
        await SendAsync("""{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw-e2e","version":"1.0"}}}""");
        var response = await ReadResponseAsync("init");
        Assert.NotNull(response["result"]);
        await SendAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""");
    }

    public void CloseInput() => _process.StandardInput.Close();

    public async Task<string> StandardErrorAsync() => await _stderr;

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.StandardInput.Close();
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                try { await _process.WaitForExitAsync(cts.Token); }
                catch (OperationCanceledException) { _process.Kill(entireProcessTree: true); }
            }
        }
        catch (InvalidOperationException) { }
        await _pump.ConfigureAwait(false);
        _process.Dispose();
    }
}
