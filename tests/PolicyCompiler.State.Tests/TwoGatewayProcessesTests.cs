using System.Diagnostics;
using System.Reflection;

namespace PolicyCompiler.State.Tests;

/// <summary>
/// Real gateway processes (<c>policyc run</c>, the same stdio gateway as a built binary) sharing one
/// SQLite file, with a one-line upstream (sed) that answers every request.
/// </summary>
public sealed class TwoGatewayProcessesTests : IDisposable
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
        int[] admitted = await Task.WhenAll(RunGatewayAsync(policy, database, 12), RunGatewayAsync(policy, database, 12));
        Assert.Equal(10, admitted[0] + admitted[1]);

        // A new process (a client restarting its gateway) starts from the stored count: nothing left.
        Assert.Equal(0, await RunGatewayAsync(policy, database, 3));
    }

    /// <summary>Sends <paramref name="calls"/> tools/call requests through one gateway process; returns how many reached the upstream.</summary>
    private static async Task<int> RunGatewayAsync(string policy, string database, int calls)
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
            PolicycDll(), "run", policy, "--state", "sqlite:" + database, "--state-timeout", "10000", "--",
            "sed", "-u", "-E", """s/.*"id":([0-9]+).*/{"jsonrpc":"2.0","id":\1,"result":{"content":[{"type":"text","text":"done"}]}}/""",
        })
        {
            info.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(info)!;
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
        string configuration = typeof(TwoGatewayProcessesTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
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
