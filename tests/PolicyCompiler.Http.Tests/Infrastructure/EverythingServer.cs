using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>
/// <c>@modelcontextprotocol/server-everything streamableHttp</c> (npm, pinned by tests/servers-npm) on a
/// free loopback port (its <c>PORT</c> variable); killed with its process tree on dispose.
/// </summary>
internal sealed class EverythingServer : IAsyncDisposable
{
    private readonly Process _process;

    private EverythingServer(Process process, Uri url)
    {
        _process = process;
        Url = url;
    }

    public Uri Url { get; }

    public static async Task<EverythingServer> StartAsync()
    {
        string bin = Path.Combine(Repo.Root, "tests", "servers-npm", "node_modules", ".bin", "mcp-server-everything");
        if (!File.Exists(bin))
        {
            throw new InvalidOperationException($"{bin} is missing: run `npm ci` in tests/servers-npm (scripts/test.sh does it).");
        }

        int port = FreePort();
        var start = new ProcessStartInfo(bin) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("streamableHttp");
        start.Environment["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Process process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                break;
            }
            catch (SocketException) when (deadline.Elapsed < TimeSpan.FromSeconds(30) && !process.HasExited)
            {
                await Task.Delay(100);
            }
        }

        return new EverythingServer(process, new Uri($"http://127.0.0.1:{port}/mcp"));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    internal static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>Paths in the repository.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Configuration { get; } =
        typeof(Repo).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyConfigurationAttribute), false)
            .Cast<System.Reflection.AssemblyConfigurationAttribute>().First().Configuration;

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PolicyCompiler.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("PolicyCompiler.sln not found above " + AppContext.BaseDirectory);
    }
}
