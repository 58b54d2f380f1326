using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Http.Tests.Infrastructure;
using Xunit.Abstractions;

namespace PolicyCompiler.Http.Tests;

/// <summary>Load tests run alone: after the parallel classes, so they neither disturb nor are disturbed by them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LoadCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Load";
}

/// <summary>
/// Issue 5's load test: many concurrent MCP sessions for 30 s on loopback through the gateway running as its own
/// process (<c>policyc run http</c>), each session initializing, calling allowed, denied and rate-limited tools in a
/// loop and ending with DELETE. Asserted: no transport error, every decision right (and denied calls never reached
/// the server, counted server-side), the sessions table empty afterwards, no child process and no client connection
/// left, no socket in CLOSE_WAIT, resident memory bounded. The figures go to the test output (docs/http.md).
/// POLICYCOMPILER_LOAD_SECONDS, POLICYCOMPILER_LOAD_SESSIONS and POLICYCOMPILER_LOAD_CHILD_SESSIONS override the sizes;
/// POLICYCOMPILER_LOAD_NATIVE=1 builds and loads the Native AOT gateway instead of <c>policyc run http</c>.
/// </summary>
[Collection(LoadCollection.Name)]
[Trait("Category", "Load")]
public sealed class LoadTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Grants = 10;

    // Generous bounds: a leak of even a few kilobytes per session over thousands of sessions, or a runaway buffer, crosses them.
    private const long PeakResidentLimit = 768L << 20;
    private const long GrowthAllowance = 96L << 20;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "policycompiler-load-" + Guid.NewGuid().ToString("N"));
    private readonly List<(string Token, string Line)> _grants = Enumerable.Range(0, Grants).Select(i => GrantTable.NewGrant("load" + i)).ToList();

    private static TimeSpan Duration => TimeSpan.FromSeconds(Setting("POLICYCOMPILER_LOAD_SECONDS", 30));

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        await File.WriteAllTextAsync(Path.Combine(_directory, "load.json"), LoadDriver.Policy);
        await File.WriteAllTextAsync(Path.Combine(_directory, "grants.json"), "{ " + string.Join(", ", _grants.Select(g => g.Line)) + " }");
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task HttpUpstream_ManySessions_ThirtySeconds()
    {
        int sessions = Setting("POLICYCOMPILER_LOAD_SESSIONS", 200);
        await using SdkHttpServer server = await SdkHttpServer.StartAsync();
        await using GatewayProcess gateway = await StartGatewayAsync(["--upstream", server.Url.ToString()]);

        var driver = new LoadDriver();
        (Sample peak, TimeSpan elapsed) = await RunSampledAsync(gateway, () =>
            driver.RunAsync(sessions, Grants, Duration, roundsPerSession: 5, (grant, http) => Clients.ConnectAsync(gateway.Url, _grants[grant].Token, http: http)));

        Report("http → http (SDK ASP.NET Core server)", sessions, driver, peak, elapsed);
        AssertDecisions(driver);

        // Server side: every admitted call arrived, no refused one did.
        string[] calls = [.. server.Calls];
        Assert.Equal(0, calls.Count(c => c == "add_inline_policy"));
        Assert.Equal(driver.Sessions, calls.Count(c => c == "get_pod_logs"));
        Assert.Equal(driver.GrantAdmitted.Values.Sum(), calls.Count(c => c == "CreateCodeConnection"));
        Assert.Equal(driver.Allowed, calls.Length);
        Assert.True(server.Deletes >= driver.Sessions, $"{server.Deletes} DELETEs for {driver.Sessions} sessions");

        await AssertCleanAfterRunAsync(gateway, driver, peak, upstreamPort: server.Url.Port);
    }

    [Fact]
    public async Task StdioChildren_SessionPerChild_ThirtySeconds()
    {
        // Every session is a `dotnet EksLikeServer.dll` process (~50 MB, ~0.3 s of CPU to start): 200 of them at once
        // do not fit 2 shared cores, so fewer concurrent sessions, each living for more calls (docs/http.md).
        int sessions = Setting("POLICYCOMPILER_LOAD_CHILD_SESSIONS", 16);
        string callLogs = Path.Combine(_directory, "calls");
        Directory.CreateDirectory(callLogs);
        string server = Path.Combine(Repo.Root, "tests", "Servers", "EksLikeServer", "bin", Repo.Configuration, "net10.0", "EksLikeServer.dll");
        // Each child logs its calls to its own file (named by its pid: sh execs dotnet), so counting needs no shared appends.
        await using GatewayProcess gateway = await StartGatewayAsync(
            ["--", "sh", "-c", "EKS_LIKE_SERVER_CALL_LOG=\"$0/$$.jsonl\" exec dotnet \"$1\"", callLogs, server]);

        var driver = new LoadDriver();
        (Sample peak, TimeSpan elapsed) = await RunSampledAsync(gateway, () =>
            driver.RunAsync(sessions, Grants, Duration, roundsPerSession: 10, (grant, http) => Clients.ConnectAsync(gateway.Url, _grants[grant].Token, standaloneGet: false, http: http)));

        Report("http → stdio child per session (EKS-like server)", sessions, driver, peak, elapsed);
        AssertDecisions(driver);
        await AssertCleanAfterRunAsync(gateway, driver, peak, upstreamPort: null);

        // Server side (the children have exited, so their logs are complete).
        string[] calls = Directory.EnumerateFiles(callLogs).SelectMany(File.ReadLines)
            .Select(line => System.Text.Json.Nodes.JsonNode.Parse(line)!["tool"]!.GetValue<string>()).ToArray();
        Assert.Equal(0, calls.Count(c => c == "add_inline_policy"));
        Assert.Equal(driver.Sessions, calls.Count(c => c == "get_pod_logs"));
        Assert.Equal(driver.GrantAdmitted.Values.Sum(), calls.Count(c => c == "CreateCodeConnection"));
        Assert.Equal(driver.Allowed, calls.Length);
        Assert.True(peak.Children >= Math.Min(2, sessions), $"at most {peak.Children} children were seen at once");
    }

    private async Task<GatewayProcess> StartGatewayAsync(IEnumerable<string> arguments)
    {
        string policy = Path.Combine(_directory, "load.json");
        string? built = Environment.GetEnvironmentVariable("POLICYCOMPILER_LOAD_NATIVE") == "1" ? await BuildNativeGatewayAsync(policy) : null;
        output.WriteLine(built is null ? "gateway: dotnet policyc.dll run http (interpreter, JIT)" : "gateway: policyc build (Native AOT, policy compiled in)");
        return await GatewayProcess.StartAsync(policy, ["--grants", Path.Combine(_directory, "grants.json"), "--log-level", "Warning", .. arguments], builtGateway: built);
    }

    /// <summary>POLICYCOMPILER_LOAD_NATIVE=1: the load policy built into a Native AOT gateway (minutes), as users run it.</summary>
    private async Task<string> BuildNativeGatewayAsync(string policy)
    {
        string executable = Path.Combine(_directory, "load-gateway");
        string policyc = Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = Repo.Root };
        foreach (string argument in new[] { policyc, "build", policy, "-o", executable })
        {
            start.ArgumentList.Add(argument);
        }

        using Process build = Process.Start(start)!;
        Task<string> stdout = build.StandardOutput.ReadToEndAsync();
        Task<string> stderr = build.StandardError.ReadToEndAsync();
        await build.WaitForExitAsync();
        Assert.True(build.ExitCode == 0 && File.Exists(executable), await stdout + await stderr);
        return executable;
    }

    /// <summary>Every answer was the expected one; the grant limit admitted exactly its maximum per grant.</summary>
    private static void AssertDecisions(LoadDriver driver)
    {
        Assert.True(driver.Errors.Count == 0, $"{driver.Errors.Count} errors, e.g.:\n{driver.ErrorSample()}");
        Assert.True(driver.Sessions > 0 && driver.Denied > 0);
        Assert.Equal(driver.Sessions, driver.SessionLimited);
        foreach ((int grant, int tried) in driver.GrantTried)
        {
            // Exactly the limit once it was reached (never one more under concurrency); all of them below it.
            int admitted = driver.GrantAdmitted.GetValueOrDefault(grant);
            Assert.True(admitted == Math.Min(tried, LoadDriver.GrantLimit), $"grant {grant}: {admitted} of {tried} admitted, limit {LoadDriver.GrantLimit}");
        }

        Assert.Equal(driver.GrantAttempts, driver.GrantAdmitted.Values.Sum() + driver.GrantLimited);
    }

    /// <summary>After every session ended: nothing is left behind in the gateway process.</summary>
    private async Task AssertCleanAfterRunAsync(GatewayProcess gateway, LoadDriver driver, Sample peak, int? upstreamPort)
    {
        using var http = Clients.Raw();
        string metrics = await http.GetStringAsync($"http://127.0.0.1:{gateway.AdminPort}/metrics");
        Assert.Equal(driver.Denied, MetricValue(metrics, "policycompiler_decisions_total{tool=\"add_inline_policy\",decision=\"deny\"}"));

        // Sessions: every DELETE forgot its session (the SDK client does not wait for the DELETE's answer, so poll).
        Assert.True(await EventuallyAsync(async () => MetricValue(await http.GetStringAsync($"http://127.0.0.1:{gateway.AdminPort}/metrics"), "policycompiler_active_sessions") == 0),
            "sessions left in the table: " + MetricValue(await http.GetStringAsync($"http://127.0.0.1:{gateway.AdminPort}/metrics"), "policycompiler_active_sessions"));

        // Child processes: none left (an ended session's child is killed after --shutdown-grace at the latest).
        Assert.True(await EventuallyAsync(() => Task.FromResult(ProcFs.Descendants(gateway.Pid).Count == 0)),
            "child processes left: " + string.Join(", ", ProcFs.Descendants(gateway.Pid)));

        // Sockets: no client connection left open on the MCP port, nothing half-closed anywhere; what remains is the two
        // listeners and idle pooled connections to the upstream (reused; closed after 60 s idle), never more than ran at once.
        Assert.True(await EventuallyAsync(() =>
        {
            (List<ProcFs.TcpSocket> tcp, _) = ProcFs.Sockets(gateway.Pid);
            return Task.FromResult(!tcp.Exists(s => s.State != ProcFs.Listen && s.LocalPort == gateway.Port) && !tcp.Exists(s => s.State == ProcFs.CloseWait));
        }), "sockets left: " + DescribeSockets(gateway) + "; this process's connections to the gateway: "
            + ProcFs.Sockets(Environment.ProcessId).Tcp.Count(s => s.RemotePort == gateway.Port && s.State == ProcFs.Established));
        (List<ProcFs.TcpSocket> sockets, int descriptors) = ProcFs.Sockets(gateway.Pid);
        int upstreamConnections = sockets.Count(s => s.State == ProcFs.Established && s.RemotePort == upstreamPort);
        Assert.Equal(2, sockets.Count(s => s.State == ProcFs.Listen));
        Assert.True(upstreamConnections <= peak.Sockets, $"{upstreamConnections} upstream connections after the run, {peak.Sockets} sockets at the peak");
        int adminConnections = sockets.Count(s => s.State != ProcFs.Listen && s.LocalPort == gateway.AdminPort); // this test's metrics requests
        Assert.True(sockets.Count == 2 + upstreamConnections + adminConnections, "unexpected sockets: " + DescribeSockets(gateway));

        long after = gateway.ResidentBytes();
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"after the run: {descriptors} socket descriptors ({upstreamConnections} idle upstream connections), RSS {after >> 20} MiB"));

        // A graceful stop still works after the load.
        Assert.Equal(0, await gateway.StopAsync(TimeSpan.FromSeconds(30)));
    }

    /// <summary>Runs the load while sampling the gateway's memory, children and sockets every half second.</summary>
    private static async Task<(Sample Peak, TimeSpan Elapsed)> RunSampledAsync(GatewayProcess gateway, Func<Task> load)
    {
        var samples = new List<Sample>();
        using var stop = new CancellationTokenSource();
        Task sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                int children = ProcFs.Descendants(gateway.Pid).Count;
                samples.Add(new Sample(gateway.ResidentBytes(), children, ProcFs.Sockets(gateway.Pid).SocketDescriptors));
                try
                {
                    await Task.Delay(500, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });
        var clock = Stopwatch.StartNew();
        await load();
        TimeSpan elapsed = clock.Elapsed;
        await stop.CancelAsync();
        await sampler;

        var peak = new Sample(samples.Max(s => s.Resident), samples.Max(s => s.Children), samples.Max(s => s.Sockets));
        Assert.True(peak.Resident < PeakResidentLimit, $"peak RSS {peak.Resident >> 20} MiB");

        // Bounded, not growing with the number of sessions served: the second half of the run needs no more memory
        // than the first half's peak plus an allowance (the GC settles; a per-session leak does not).
        int half = samples.Count / 2;
        long firstHalf = samples.Take(half).Max(s => s.Resident);
        long secondHalf = samples.Skip(half).Max(s => s.Resident);
        Assert.True(secondHalf <= firstHalf + GrowthAllowance, $"RSS grew from {firstHalf >> 20} MiB to {secondHalf >> 20} MiB");
        return (peak, elapsed);
    }

    private void Report(string mode, int sessions, LoadDriver driver, Sample peak, TimeSpan elapsed) =>
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{mode}: {sessions} concurrent sessions for {elapsed.TotalSeconds:F1} s: {driver.Describe(elapsed)}; gateway peak RSS {peak.Resident >> 20} MiB, peak {peak.Sockets} socket descriptors, peak {peak.Children} children"));

    private static string DescribeSockets(GatewayProcess gateway) =>
        string.Join(", ", ProcFs.Sockets(gateway.Pid).Tcp.GroupBy(s => (s.LocalPort == gateway.Port ? "mcp-port" : s.LocalPort == gateway.AdminPort ? "admin-port" : "out", s.State))
            .Select(g => $"{g.Key.Item1}/state {g.Key.State:X2}: {g.Count()}"));

    private static double MetricValue(string metrics, string series)
    {
        Match match = Regex.Match(metrics, "^" + Regex.Escape(series) + " (\\S+)$", RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
    }

    private static async Task<bool> EventuallyAsync(Func<Task<bool>> condition)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(20))
            {
                return false;
            }

            await Task.Delay(200);
        }

        return true;
    }

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out int value) && value > 0 ? value : fallback;

    private readonly record struct Sample(long Resident, int Children, int Sockets);
}
