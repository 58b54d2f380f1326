using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>
/// The gateway as users run it: `policyc build` (Native AOT, the policy compiled in), then
/// `GATEWAY http --upstream URL --grants FILE --admin …` as a process, with the SDK client through it.
/// </summary>
public sealed class NativeGatewayTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "policycompiler-http-native-" + Environment.ProcessId);
    private SdkHttpServer _server = null!;
    private Process? _gateway;
    private readonly System.Text.StringBuilder _stderr = new();

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        _server = await SdkHttpServer.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_gateway is { HasExited: false })
        {
            _gateway.Kill(entireProcessTree: true);
            await _gateway.WaitForExitAsync();
        }

        _gateway?.Dispose();
        await _server.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task BuiltGateway_ServesHttp_WithGrantsAndMetrics_AndStopsOnSigterm()
    {
        string policy = Path.Combine(_directory, "http-tests.json");
        await File.WriteAllTextAsync(policy, TestGateway.Policy);
        string executable = Path.Combine(_directory, "http-gateway");
        string policyc = Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");
        (int built, string buildOutput) = await RunAsync("dotnet", [policyc, "build", policy, "-o", executable], TimeSpan.FromMinutes(10));
        Assert.True(built == 0 && File.Exists(executable), buildOutput);

        (string token, string line) = GrantTable.NewGrant("native");
        string grants = Path.Combine(_directory, "grants.json");
        await File.WriteAllTextAsync(grants, "{ " + line + " }");
        int port = EverythingServer.FreePort();
        int adminPort = EverythingServer.FreePort();
        var start = new ProcessStartInfo(executable) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string argument in new[]
        {
            "http", "--listen", $"127.0.0.1:{port}", "--upstream", _server.Url.ToString(), "--grants", grants,
            "--admin", $"127.0.0.1:{adminPort}", "--state", "memory", "--upstream-header", "Authorization: Bearer upstream-secret",
        })
        {
            start.ArgumentList.Add(argument);
        }

        _gateway = Process.Start(start)!;
        _gateway.ErrorDataReceived += (_, e) => { lock (_stderr) { _stderr.AppendLine(e.Data); } };
        _gateway.OutputDataReceived += (_, e) => { lock (_stderr) { _stderr.AppendLine("stdout: " + e.Data); } };
        _gateway.BeginErrorReadLine();
        _gateway.BeginOutputReadLine();
        await WaitForPortAsync(port);

        var url = new Uri($"http://127.0.0.1:{port}/mcp");
        await using (McpClient client = await Clients.ConnectAsync(url, token))
        {
            string[] names = (await client.ListToolsAsync()).Select(t => t.Name).Order(StringComparer.Ordinal).ToArray();
            Assert.DoesNotContain("get_policies_for_role", names);
            Assert.Contains("list_k8s_resources", names);
            Assert.NotEqual(true, (await client.CallToolAsync("list_k8s_resources")).IsError);
            CallToolResult denied = await client.CallToolAsync("add_inline_policy");
            Assert.True(denied.IsError);
            Assert.Contains("IAM changes are not allowed", Assert.IsType<TextContentBlock>(denied.Content[0]).Text);
        }

        Assert.DoesNotContain("add_inline_policy", _server.Calls);
        Assert.All(_server.AuthorizationHeaders, h => Assert.Equal("Bearer upstream-secret", h));
        await Assert.ThrowsAnyAsync<Exception>(() => Clients.ConnectAsync(url, "wrong-token"));

        using HttpClient http = Clients.Raw();
        string metrics = await http.GetStringAsync($"http://127.0.0.1:{adminPort}/metrics");
        Assert.Contains("policycompiler_decisions_total{tool=\"add_inline_policy\",decision=\"deny\"} 1", metrics, StringComparison.Ordinal);

        // SIGTERM: a graceful stop, exit status 0.
        Assert.Equal(0, Kill(_gateway.Id, 15));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await _gateway.WaitForExitAsync(timeout.Token);
        Assert.True(_gateway.ExitCode == 0, _stderr.ToString());
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    private async Task WaitForPortAsync(int port)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (waited.Elapsed < TimeSpan.FromSeconds(20) && !_gateway!.HasExited)
            {
                await Task.Delay(50);
            }
            catch (SocketException)
            {
                throw new InvalidOperationException("the gateway did not listen: " + _stderr);
            }
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = Repo.Root };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, await stdout + await stderr);
    }
}
