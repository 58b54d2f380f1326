using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>
/// <c>policyc run http POLICY …</c> as its own process, so that what it holds (sockets, child processes,
/// memory) can be read from <c>/proc</c> without the test's own clients and servers mixed in.
/// </summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private GatewayProcess(Process process, int port, int adminPort)
    {
        _process = process;
        Port = port;
        AdminPort = adminPort;
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.OutputDataReceived += (_, e) => Append("stdout: " + e.Data);
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    public int Pid => _process.Id;

    public int Port { get; }

    public int AdminPort { get; }

    public Uri Url => new($"http://127.0.0.1:{Port}/mcp");

    /// <summary>What the gateway wrote on stderr/stdout so far (for assertion messages).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts <c>dotnet policyc.dll run http POLICY --listen … --admin … --state memory</c> plus <paramref name="arguments"/>,
    /// or, with <paramref name="builtGateway"/> (a <c>policyc build</c> output, the policy compiled in), that executable's
    /// <c>http --listen … --admin … --state memory</c>.
    /// </summary>
    public static async Task<GatewayProcess> StartAsync(string policyFile, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, string? builtGateway = null)
    {
        string policyc = Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");
        int port = EverythingServer.FreePort();
        int adminPort = EverythingServer.FreePort();
        var start = new ProcessStartInfo(builtGateway ?? "dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        string[] command = builtGateway is null ? [policyc, "run", "http", policyFile] : ["http"];
        foreach (string argument in (string[])[.. command, "--listen", $"127.0.0.1:{port}", "--admin", $"127.0.0.1:{adminPort}", "--state", "memory"])
        {
            start.ArgumentList.Add(argument);
        }

        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (KeyValuePair<string, string> variable in environment ?? new Dictionary<string, string>())
        {
            start.Environment[variable.Key] = variable.Value;
        }

        var gateway = new GatewayProcess(Process.Start(start)!, port, adminPort);
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return gateway;
            }
            catch (SocketException) when (waited.Elapsed < TimeSpan.FromSeconds(30) && !gateway._process.HasExited)
            {
                await Task.Delay(100);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException("the gateway did not listen: " + gateway.Output);
            }
        }
    }

    /// <summary>SIGTERM, then the exit status (the gateway stops gracefully).</summary>
    public async Task<int> StopAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            _ = Kill(_process.Id, 15);
        }

        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    /// <summary>Resident set size in bytes (<c>VmRSS</c> of /proc/PID/status).</summary>
    public long ResidentBytes() => ProcFs.ResidentBytes(Pid);

    private void Append(string? line)
    {
        lock (_output)
        {
            if (_output.Length < 64 * 1024)
            {
                _output.AppendLine(line);
            }
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}

/// <summary>What /proc says about a process: its memory, its children, its TCP sockets.</summary>
internal static class ProcFs
{
    /// <summary>TCP states of /proc/net/tcp (include/net/tcp_states.h).</summary>
    public const int Established = 0x01, CloseWait = 0x08, Listen = 0x0A;

    public static long ResidentBytes(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                // "VmRSS:     123456 kB"
                string[] parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    /// <summary>The live (not zombie) processes descended from <paramref name="pid"/>: its children, theirs, and so on.</summary>
    public static List<int> Descendants(int pid)
    {
        var parents = new Dictionary<int, int>();
        foreach (string directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out int candidate))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(directory, "stat"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile
            }

            // "pid (comm) state ppid …": comm may contain spaces and parentheses, so split after the last ')'.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields[0] != "Z")
            {
                parents[candidate] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            }
        }

        var found = new List<int>();
        var frontier = new Queue<int>([pid]);
        while (frontier.TryDequeue(out int parent))
        {
            foreach (KeyValuePair<int, int> entry in parents)
            {
                if (entry.Value == parent)
                {
                    found.Add(entry.Key);
                    frontier.Enqueue(entry.Key);
                }
            }
        }

        return found;
    }

    /// <summary>One TCP socket the process holds (a file descriptor naming a socket inode found in /proc/net/tcp{,6}).</summary>
    public readonly record struct TcpSocket(int LocalPort, int RemotePort, int State);

    /// <summary>The TCP sockets among the process's file descriptors, and how many socket descriptors it has in all.</summary>
    public static (List<TcpSocket> Tcp, int SocketDescriptors) Sockets(int pid)
    {
        var inodes = new HashSet<long>();
        int descriptors = 0;
        foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(fd).LinkTarget;
            }
            catch (IOException)
            {
                continue;
            }

            // "socket:[12345]"
            if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal))
            {
                descriptors++;
                inodes.Add(long.Parse(target.AsSpan(8, target.Length - 9), CultureInfo.InvariantCulture));
            }
        }

        var sockets = new List<TcpSocket>();
        foreach (string table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            foreach (string line in File.ReadLines(table).Skip(1))
            {
                // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …"
                string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length > 9 && inodes.Contains(long.Parse(f[9], CultureInfo.InvariantCulture)))
                {
                    sockets.Add(new TcpSocket(PortOf(f[1]), PortOf(f[2]), int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
                }
            }
        }

        return (sockets, descriptors);
    }

    private static int PortOf(string address) => int.Parse(address.AsSpan(address.IndexOf(':') + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
}
