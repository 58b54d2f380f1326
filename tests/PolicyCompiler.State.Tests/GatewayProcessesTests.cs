using System.Diagnostics;
using System.Reflection;

namespace PolicyCompiler.State.Tests;

/// <summary>
/// Real gateway processes (<c>policyc run</c>, the same stdio gateway as a built binary) sharing one
/// SQLite file or one real redis-server, with a one-line upstream (sed) that answers every request.
/// </summary>
public sealed class GatewayProcessesTests : IDisposable, IRequiresRedis
{
    private const string Policy = """
        { "version": "1", "name": "two-processes", "default": "deny",
          "tools": { "create": { "action": "allow", "limits": [ { "counter": "creates", "window": "hour", "max": 10, "scope": "global" } ] } } }
        """;

    private readonly TempDirectory _directory = new();

    [Fact]
    public async Task Two_gateway_processes_on_one_database_never_admit_more_than_max_together_and_a_restart_keeps_the_count()
    {
        string policy = _directory.File("policy.json");
        File.WriteAllText(policy, Policy);
        string database = _directory.File("counters.db");

        // 2 x 12 calls at once against max 10.
        string state = "sqlite:" + database;
        int[] admitted = await Task.WhenAll(RunGatewayAsync(policy, state, 12), RunGatewayAsync(policy, state, 12));
        Assert.Equal(10, admitted[0] + admitted[1]);

        // A new process (a client restarting its gateway) starts from the stored count: nothing left.
        Assert.Equal(0, await RunGatewayAsync(policy, state, 3));
    }

    [StoreFact]
    public async Task Three_gateway_processes_sharing_one_redis_never_admit_more_than_max_together()
    {
        using var redis = new RedisServer();
        string policy = _directory.File("policy.json");
        File.WriteAllText(policy, Policy);
        string state = $"redis://127.0.0.1:{redis.Port}/0";

        // 3 x 12 calls at once against max 10.
        int[] admitted = await Task.WhenAll(
            RunGatewayAsync(policy, state, 12), RunGatewayAsync(policy, state, 12), RunGatewayAsync(policy, state, 12));

        Assert.Equal(10, admitted.Sum());
    }

    [StoreFact]
    public async Task Killing_redis_mid_run_denies_counted_calls_then_the_gateway_recovers_when_it_returns()
    {
        using var redis = new RedisServer();
        string policy = _directory.File("policy.json");
        File.WriteAllText(policy, Policy);
        using Process gateway = StartGateway(policy, $"redis://127.0.0.1:{redis.Port}/0", "500");
        int id = 0;
        async Task<string> CallAsync()
        {
            await gateway.StandardInput.WriteLineAsync(
                "{\"jsonrpc\":\"2.0\",\"id\":" + ++id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"create\",\"arguments\":{}}}");
            await gateway.StandardInput.FlushAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            return await gateway.StandardOutput.ReadLineAsync(timeout.Token) ?? "";
        }

        Assert.Contains("\"text\":\"done\"", await CallAsync());

        redis.Stop();
        string refused = await CallAsync();
        Assert.Contains("gateway:state-unavailable", refused); // fail closed: the call needs a counter

        redis.Start();
        string recovered = "";
        for (int attempt = 0; attempt < 100 && !recovered.Contains("\"text\":\"done\""); attempt++)
        {
            recovered = await CallAsync(); // the client reconnects in the background; no restart
            if (!recovered.Contains("\"text\":\"done\"")) await Task.Delay(100);
        }

        Assert.Contains("\"text\":\"done\"", recovered);
        gateway.StandardInput.Close();
        await gateway.WaitForExitAsync();
    }

    private static Process StartGateway(string policy, string state, string stateTimeoutMs)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[]
        {
            PolicycDll(), "run", policy, "--state", state, "--state-timeout", stateTimeoutMs, "--",
            "sed", "-u", "-E", """s/.*"id":([0-9]+).*/{"jsonrpc":"2.0","id":\1,"result":{"content":[{"type":"text","text":"done"}]}}/""",
        })
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    /// <summary>Sends <paramref name="calls"/> tools/call requests through one gateway process; returns how many reached the upstream.</summary>
    private static async Task<int> RunGatewayAsync(string policy, string state, int calls)
    {
        using Process process = StartGateway(policy, state, "10000");
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        for (int i = 1; i <= calls; i++)
        {
            await process.StandardInput.WriteLineAsync(
                "{\"jsonrpc\":\"2.0\",\"id\":" + i + ",\"method\":\"tools/call\",\"params\":{\"name\":\"create\",\"arguments\":{}}}");
        }

        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout;
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == calls, $"expected {calls} answers, got {lines.Length}: {output}\n{await stderr}");
        int forwarded = lines.Count(l => l.Contains("\"text\":\"done\""));
        int limited = lines.Count(l => l.Contains("\"decision\":\"rate_limited\""));
        Assert.Equal(calls, forwarded + limited);
        return forwarded;
    }

    private static string PolicycDll()
    {
        string configuration = typeof(GatewayProcessesTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "PolicyCompiler.sln")))
        {
            directory = directory.Parent;
        }

        Assert.NotNull(directory);
        string dll = Path.Combine(directory!.FullName, "src", "PolicyCompiler.Cli", "bin", configuration, "net10.0", "policyc.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing (the test project builds it)");
        return dll;
    }

    public void Dispose() => _directory.Dispose();
}
