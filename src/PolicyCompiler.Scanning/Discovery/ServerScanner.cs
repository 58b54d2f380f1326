using System.Reflection;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Scanning.Classification;

namespace PolicyCompiler.Scanning.Discovery;

/// <summary>
/// Connects to an MCP server with the official C# SDK client, initializes, and lists every tool of
/// every page (MCP server/tools#listing-tools, <c>cursor</c>/<c>nextCursor</c>). One timeout covers
/// the whole scan; every way it can fail is a <see cref="ScanException"/> whose message says what
/// happened, with the server's last stderr lines when there are any.
/// </summary>
public static class ServerScanner
{
    // A server that keeps returning cursors is broken, not large: stop rather than loop forever.
    private const int MaxPages = 1000;
    private const int StderrTailLines = 20;

    /// <summary>Scans <paramref name="target"/>.</summary>
    /// <param name="target">The server.</param>
    /// <param name="timeout">How long starting, initializing and listing may take together.</param>
    /// <param name="cancellationToken">Stops the scan.</param>
    public static async Task<ScanResult> ScanAsync(ScanTarget target, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        var stderr = new StderrTail(StderrTailLines);
        var nonProtocol = new NonProtocolOutput();
        IClientTransport transport = target switch
        {
            StdioScanTarget stdio => new StdioClientTransport(new StdioClientTransportOptions
            {
                Command = ResolveCommand(stdio.Command),
                Arguments = [.. stdio.Arguments],
                Name = "policyc-scan",
                StandardErrorLines = stderr.Add,
                ShutdownTimeout = TimeSpan.FromSeconds(2),
            }, nonProtocol),
            HttpScanTarget http => new HttpClientTransport(new HttpClientTransportOptions
            {
                Endpoint = http.Endpoint,
                AdditionalHeaders = http.Headers.ToDictionary(StringComparer.OrdinalIgnoreCase),
                ConnectionTimeout = timeout,
                Name = "policyc-scan",
            }, nonProtocol),
            _ => throw new ArgumentException("unknown target kind", nameof(target)),
        };
        return await ScanAsync(transport, target, timeout, stderr, nonProtocol, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Scans the server behind an already-built <paramref name="transport"/> (tests use an in-memory one).</summary>
    internal static async Task<ScanResult> ScanAsync(
        IClientTransport transport, ScanTarget target, TimeSpan timeout, StderrTail? stderr, NonProtocolOutput? nonProtocol, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        string seconds = FormatSeconds(timeout);

        McpClient client;
        try
        {
            client = await McpClient.CreateAsync(transport, new McpClientOptions
            {
                ClientInfo = new Implementation { Name = "policyc-scan", Version = ToolVersion() },
                InitializationTimeout = timeout,
                // The newest revision is probed first (server/discover); an older server answers it
                // with an error at once, and one that ignores it must leave time for initialize.
                DiscoverProbeTimeout = timeout / 3 < TimeSpan.FromSeconds(5) ? timeout / 3 : TimeSpan.FromSeconds(5),
            }, nonProtocol, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not ScanException && !cancellationToken.IsCancellationRequested)
        {
            throw StartFailure(e, target, seconds, stderr, nonProtocol);
        }

        await using (client.ConfigureAwait(false))
        {
            string serverName = client.ServerInfo?.Name ?? "(unnamed)";
            string serverVersion = client.ServerInfo?.Version ?? "";
            if (client.ServerCapabilities?.Tools is null)
            {
                throw new ScanException(ScanFailure.NoTools,
                    $"the server '{serverName}' does not offer tools (its initialize result has no 'tools' capability): there is nothing to write a policy for");
            }

            var tools = new List<ScannedTool>();
            var warnings = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var cursors = new HashSet<string>(StringComparer.Ordinal);
            string? cursor = null;
            try
            {
                for (int page = 0; ; page++)
                {
                    if (page == MaxPages)
                    {
                        throw new ScanException(ScanFailure.ListFailed, $"tools/list did not end after {MaxPages} pages");
                    }
                    ListToolsResult result = await client.ListToolsAsync(new ListToolsRequestParams { Cursor = cursor }, deadline.Token).ConfigureAwait(false);
                    foreach (Tool tool in result.Tools)
                    {
                        if (!seen.Add(tool.Name))
                        {
                            warnings.Add($"the server lists '{tool.Name}' more than once; the first definition was used");
                            continue;
                        }
                        tools.Add(ToScanned(tool));
                    }
                    cursor = result.NextCursor;
                    if (string.IsNullOrEmpty(cursor))
                    {
                        break;
                    }
                    if (!cursors.Add(cursor))
                    {
                        throw new ScanException(ScanFailure.ListFailed, $"tools/list returned the cursor '{cursor}' twice: the pages would never end");
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new ScanException(ScanFailure.ListFailed, $"tools/list did not finish within {seconds} (--timeout)" + Tail(stderr));
            }
            catch (Exception e) when (e is McpException or IOException)
            {
                throw new ScanException(ScanFailure.ListFailed, $"tools/list failed: {e.Message}" + Tail(stderr), e);
            }

            if (tools.Count == 0)
            {
                throw new ScanException(ScanFailure.NoTools, $"the server '{serverName}' lists no tools: there is nothing to write a policy for");
            }
            return new ScanResult(target, serverName, serverVersion, client.NegotiatedProtocolVersion, tools, warnings);
        }
    }

    private static ScannedTool ToScanned(Tool tool)
    {
        ToolAnnotations? a = tool.Annotations;
        var hints = a is null ? ToolHints.None : new ToolHints(a.ReadOnlyHint, a.DestructiveHint, a.IdempotentHint, a.OpenWorldHint);
        return new ScannedTool(tool.Name, tool.Description, tool.InputSchema.ValueKind == System.Text.Json.JsonValueKind.Undefined ? null : tool.InputSchema.Clone(), hints);
    }

    /// <summary>Turns a failed connect/initialize into the question the user must answer: did it start, does it speak MCP?</summary>
    private static ScanException StartFailure(Exception e, ScanTarget target, string seconds, StderrTail? stderr, NonProtocolOutput? nonProtocol)
    {
        string garbage = nonProtocol is { Count: > 0 } seen
            ? $"; it wrote {seen.Count} line(s) that are not JSON-RPC{(seen.Sample is { } sample ? $", the first: {sample}" : "")}"
            : "";
        if (e is OperationCanceledException or TimeoutException)
        {
            string what = target is StdioScanTarget
                ? "it started but did not answer 'initialize' as an MCP server on stdout"
                : "it did not answer 'initialize' as an MCP server";
            return new ScanException(ScanFailure.NotMcp, $"no MCP answer within {seconds} (--timeout): {what}{garbage}" + Tail(stderr), e);
        }

        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is ClientTransportClosedException { Details: StdioClientCompletionDetails details })
            {
                string exit = details.ExitCode is { } code ? $" with exit code {code}" : "";
                var lines = details.StandardErrorTail is { Count: > 0 } tail ? tail : stderr?.Lines ?? [];
                return new ScanException(ScanFailure.ServerDidNotStart,
                    $"the server process exited{exit} before answering 'initialize'{garbage}" + Tail(lines), e);
            }
            if (inner is IOException && target is StdioScanTarget)
            {
                // Writing to a process that already exited: the SDK knows no exit code on this path.
                return new ScanException(ScanFailure.ServerDidNotStart,
                    $"the server process exited before answering 'initialize'{garbage}" + Tail(stderr), e);
            }
            if (inner is System.ComponentModel.Win32Exception or FileNotFoundException)
            {
                return new ScanException(ScanFailure.ServerDidNotStart, $"the server could not be started: {inner.Message}", e);
            }
            if (inner is HttpRequestException http)
            {
                string status = http.StatusCode is { } s ? $" (HTTP {(int)s} {s})" : "";
                return new ScanException(ScanFailure.ServerDidNotStart, $"the server at {target.Describe()[6..]} could not be reached{status}: {http.Message}", e);
            }
        }

        string reason = e is McpException or System.Text.Json.JsonException ? "it does not speak MCP" : "the MCP handshake failed";
        return new ScanException(ScanFailure.NotMcp, $"{reason}: {e.Message}{garbage}" + Tail(stderr), e);
    }

    /// <summary>
    /// Finds the command the way a shell would, so "not found" is a clear error of its own instead of
    /// a process-start exception (a name with a slash is a path; anything else is looked up in PATH).
    /// </summary>
    private static string ResolveCommand(string command)
    {
        if (command.Length == 0)
        {
            throw new ScanException(ScanFailure.ServerDidNotStart, "the server command is empty");
        }
        if (command.Contains('/', StringComparison.Ordinal) || command.Contains(Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return File.Exists(command)
                ? command
                : throw new ScanException(ScanFailure.ServerDidNotStart, $"the server command '{command}' was not found (no such file)");
        }
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, command);
            if (File.Exists(candidate))
            {
                return candidate;
            }
            if (OperatingSystem.IsWindows())
            {
                foreach (string extension in new[] { ".exe", ".cmd", ".bat" })
                {
                    if (File.Exists(candidate + extension))
                    {
                        return candidate + extension;
                    }
                }
            }
        }
        throw new ScanException(ScanFailure.ServerDidNotStart, $"the server command '{command}' was not found in PATH");
    }

    private static string Tail(StderrTail? stderr) => Tail(stderr?.Lines ?? []);

    private static string Tail(IReadOnlyList<string> lines) =>
        lines.Count == 0 ? "" : Environment.NewLine + "the server's last stderr lines:" + Environment.NewLine + string.Join(Environment.NewLine, lines.Select(l => "  | " + l));

    private static string FormatSeconds(TimeSpan timeout) =>
        timeout.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + " s";

    private static string ToolVersion() =>
        typeof(ServerScanner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
}

/// <summary>The last lines a server wrote to stderr, for error messages (thread-safe: the SDK calls back from its reader).</summary>
internal sealed class StderrTail(int capacity)
{
    private readonly Queue<string> _lines = new();
    private readonly Lock _gate = new();

    /// <summary>Records one line.</summary>
    public void Add(string line)
    {
        lock (_gate)
        {
            if (_lines.Count == capacity)
            {
                _lines.Dequeue();
            }
            _lines.Enqueue(line);
        }
    }

    /// <summary>The recorded lines, oldest first.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_gate)
            {
                return [.. _lines];
            }
        }
    }
}
