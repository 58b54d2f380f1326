using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace PolicyCompiler.Cli.Tests;

/// <summary>
/// <c>dotnet policyc.dll ARGS</c> as a real process (stdin/stdout are the MCP client's pipes), driven with raw
/// newline-delimited JSON; stderr is collected line by line.
/// </summary>
internal sealed class PolicycProcess : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private readonly Channel<string> _stdout = Channel.CreateUnbounded<string>();
    private readonly List<string> _stderr = new();
    private readonly Task _pumps;

    private PolicycProcess(Process process)
    {
        Process = process;
        Task stdout = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                _stdout.Writer.TryWrite(line);
            }

            _stdout.Writer.TryComplete();
        });
        Task stderr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (_stderr)
                {
                    _stderr.Add(line);
                }
            }
        });
        _pumps = Task.WhenAll(stdout, stderr);
    }

    public Process Process { get; }

    /// <summary>The repository root (holds PolicyCompiler.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The configuration these tests were built with.</summary>
    public static string Configuration { get; } = typeof(PolicycProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;

    public static string EksLikeServerDll => Path.Combine(RepoRoot, "tests", "Servers", "EksLikeServer", "bin", Configuration, "net10.0", "EksLikeServer.dll");

    public static PolicycProcess Start(IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var startInfo = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        startInfo.ArgumentList.Add(Path.Combine(RepoRoot, "src", "PolicyCompiler.Cli", "bin", Configuration, "net10.0", "policyc.dll"));
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (environment is not null)
        {
            foreach ((string key, string value) in environment)
            {
                startInfo.Environment[key] = value;
            }
        }

        return new PolicycProcess(Process.Start(startInfo)!);
    }

    public async Task SendAsync(string line)
    {
        await Process.StandardInput.WriteAsync(line + "\n");
        await Process.StandardInput.FlushAsync();
    }

    /// <summary>Reads messages until the response with <paramref name="id"/>.</summary>
    public async Task<JsonObject> ReadResponseAsync(JsonNode id)
    {
        using var cts = new CancellationTokenSource(Timeout);
        while (true)
        {
            string line;
            try
            {
                line = await _stdout.Reader.ReadAsync(cts.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                throw new TimeoutException($"no response with id {id.ToJsonString()}; stderr:\n{StandardError}", e);
            }

            JsonObject message = JsonNode.Parse(line)!.AsObject();
            if ((message.ContainsKey("result") || message.ContainsKey("error")) && JsonNode.DeepEquals(message["id"], id))
            {
                return message;
            }
        }
    }

    public async Task InitializeAsync()
    {
        await SendAsync("""{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"policyc-run-test","version":"1.0"}}}""");
        JsonObject response = await ReadResponseAsync("init");
        Assert.NotNull(response["result"]);
        await SendAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""");
    }

    /// <summary>Calls a tool; returns the result object.</summary>
    public async Task<JsonObject> CallAsync(int id, string tool, string arguments = "{}")
    {
        await SendAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool + "\",\"arguments\":" + arguments + "}}");
        return (await ReadResponseAsync(id))["result"]!.AsObject();
    }

    public string StandardError
    {
        get
        {
            lock (_stderr)
            {
                return string.Join('\n', _stderr);
            }
        }
    }

    /// <summary>Waits until stderr has a line containing <paramref name="text"/>.</summary>
    public async Task WaitForStandardErrorAsync(string text)
    {
        for (var watch = Stopwatch.StartNew(); watch.Elapsed < Timeout; await Task.Delay(50))
        {
            if (StandardError.Contains(text, StringComparison.Ordinal))
            {
                return;
            }
        }

        throw new TimeoutException($"stderr never said '{text}':\n{StandardError}");
    }

    public async Task<int> WaitForExitAsync()
    {
        using var cts = new CancellationTokenSource(Timeout);
        await Process.WaitForExitAsync(cts.Token);
        return Process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!Process.HasExited)
        {
            Process.StandardInput.Close();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await Process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                Process.Kill(entireProcessTree: true);
            }
        }

        await _pumps;
        Process.Dispose();
    }

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PolicyCompiler.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("PolicyCompiler.sln not found above " + AppContext.BaseDirectory);
    }
}
