using System.Diagnostics;
using System.Text.Json.Nodes;

namespace PolicyCompiler.Cli.Tests;

/// <summary>
/// <c>policyc run</c> as users run it: a real process in front of a real server (the EKS-like sample server,
/// or shell scripts for lifecycle cases), driven over raw stdio.
/// </summary>
public sealed class RunCommandTests : IDisposable
{
    private const string Policy = """
        {
          "version": "1",
          "name": "run-test",
          "default": "deny",
          "tools": {
            "list_k8s_resources": { "limits": [ { "counter": "list_rate", "window": "minute", "max": 2, "scope": "grant" } ] },
            "add_inline_policy": { "action": "deny", "reason": "IAM changes are not allowed" }
          }
        }
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("policyc-run-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PolicyFile => Path.Combine(_directory, "policy.json");

    private string CallLog => Path.Combine(_directory, "calls.jsonl");

    private string[] ToolsThatReachedTheServer() =>
        File.Exists(CallLog) ? File.ReadAllLines(CallLog).Where(l => l.Length > 0).Select(l => (string)JsonNode.Parse(l)!["tool"]!).ToArray() : [];

    private PolicycProcess StartAgainstEksLikeServer(params string[] options)
    {
        File.WriteAllText(PolicyFile, Policy);
        return PolicycProcess.Start(
            // Counters in memory: the default store is a per-user file shared with every other gateway run.
            ["run", PolicyFile, "--state", "memory", .. options, "--", "dotnet", PolicycProcess.EksLikeServerDll],
            new Dictionary<string, string> { ["EKS_LIKE_SERVER_CALL_LOG"] = CallLog });
    }

    private static string Decision(JsonObject result) =>
        (string?)result["_meta"]?["policycompiler/decision"]?["decision"] ?? (result["isError"]?.GetValue<bool>() == true ? "error" : "allow");

    [Fact]
    public async Task AllowedCallReachesTheServer_DeniedCallNeverDoes()
    {
        await using PolicycProcess gateway = StartAgainstEksLikeServer();
        await gateway.InitializeAsync();

        JsonObject allowed = await gateway.CallAsync(1, "list_k8s_resources", """{"kind":"Pod"}""");
        JsonObject denied = await gateway.CallAsync(2, "add_inline_policy", """{"role":"admin"}""");

        Assert.Equal("allow", Decision(allowed));
        Assert.Contains("list_k8s_resources ok", (string)allowed["content"]![0]!["text"]!);
        Assert.Equal("deny", Decision(denied));
        Assert.Contains("IAM changes are not allowed", (string)denied["content"]![0]!["text"]!);

        gateway.Process.StandardInput.Close();
        Assert.Equal(0, await gateway.WaitForExitAsync());
        Assert.Equal(["list_k8s_resources"], ToolsThatReachedTheServer());
    }

    [Fact]
    public async Task Watch_ReloadsTheEditedPolicy_AndKeepsTheCounters()
    {
        await using PolicycProcess gateway = StartAgainstEksLikeServer("--watch");
        await gateway.InitializeAsync();
        Assert.Equal("allow", Decision(await gateway.CallAsync(1, "list_k8s_resources")));
        Assert.Equal("deny", Decision(await gateway.CallAsync(2, "get_pod_logs")));

        // Allow get_pod_logs too; the limit on list_k8s_resources stays as it was.
        File.WriteAllText(PolicyFile, Policy.Replace("\"add_inline_policy\"", "\"get_pod_logs\": {},\n    \"add_inline_policy\"", StringComparison.Ordinal));
        await gateway.WaitForStandardErrorAsync("counters kept");

        Assert.Equal("allow", Decision(await gateway.CallAsync(3, "get_pod_logs")));
        Assert.Equal("allow", Decision(await gateway.CallAsync(4, "list_k8s_resources")));
        // The third call in the minute: the call before the reload still counts.
        Assert.Equal("rate_limited", Decision(await gateway.CallAsync(5, "list_k8s_resources")));
        Assert.Equal(["list_k8s_resources", "get_pod_logs", "list_k8s_resources"], ToolsThatReachedTheServer());
    }

    [Fact]
    public async Task InvalidEditUnderWatch_KeepsThePreviousPolicy()
    {
        await using PolicycProcess gateway = StartAgainstEksLikeServer("--watch");
        await gateway.InitializeAsync();
        File.WriteAllText(PolicyFile, "{ \"version\": \"1\", \"tools\": { \"x\": { \"action\": \"explode\" } } }");
        await gateway.WaitForStandardErrorAsync("invalid, keeping policy run-test");
        Assert.Equal("allow", Decision(await gateway.CallAsync(1, "list_k8s_resources")));
        Assert.Equal("deny", Decision(await gateway.CallAsync(2, "add_inline_policy")));
    }

    [Fact]
    public async Task UpstreamExitWhileTheClientIsConnected_AnswersPendingRequests_AndExits1()
    {
        File.WriteAllText(PolicyFile, Policy);
        await using PolicycProcess gateway = PolicycProcess.Start(["run", PolicyFile, "--state", "memory", "--", "sh", "-c", "head -n 1 >/dev/null; exit 0"]);
        await gateway.SendAsync("""{"jsonrpc":"2.0","id":1,"method":"ping"}""");

        JsonObject response = await gateway.ReadResponseAsync(1);
        Assert.Equal(-32001, (int)response["error"]!["code"]!);
        Assert.Equal(1, await gateway.WaitForExitAsync());
        Assert.Contains("upstream MCP server exited (status 0) while the client was still connected", gateway.StandardError);
    }

    [Fact]
    public async Task Sigkill_OfTheGateway_TakesTheServerWithIt()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // PR_SET_PDEATHSIG is Linux only
        }

        File.WriteAllText(PolicyFile, Policy);
        string pidFile = Path.Combine(_directory, "server.pid");
        await using PolicycProcess gateway = PolicycProcess.Start(["run", PolicyFile, "--state", "memory", "--", "sh", "-c", $"echo $$ > '{pidFile}'; exec sleep 300"]);
        int server = await WaitForPidFileAsync(pidFile);

        // The launcher exec'd the server: the gateway's child is the server itself, same pid.
        Assert.Contains(server, ChildrenOf(gateway.Process.Id));

        gateway.Process.Kill(); // SIGKILL: nothing in the gateway runs any more
        await gateway.WaitForExitAsync();
        await WaitUntilGoneAsync(server);
    }

    [Fact]
    public async Task Sigterm_IsForwarded_AndAServerIgnoringItIsKilledAfterTheGrace()
    {
        File.WriteAllText(PolicyFile, Policy);
        string pidFile = Path.Combine(_directory, "server.pid");
        await using PolicycProcess gateway = PolicycProcess.Start(
            ["run", PolicyFile, "--state", "memory", "--shutdown-grace", "1", "--", "sh", "-c", $"trap '' TERM; echo $$ > '{pidFile}'; while :; do sleep 1; done"]);
        int server = await WaitForPidFileAsync(pidFile);

        using (Process kill = Process.Start("kill", ["-TERM", gateway.Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        int exitCode = await gateway.WaitForExitAsync();
        await WaitUntilGoneAsync(server);
        Assert.Equal(137, exitCode); // the server's status: killed (128 + SIGKILL) after ignoring SIGTERM
    }

    private static async Task<int> WaitForPidFileAsync(string path)
    {
        for (var watch = Stopwatch.StartNew(); watch.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(50))
        {
            if (File.Exists(path) && int.TryParse(File.ReadAllText(path).Trim(), out int pid))
            {
                return pid;
            }
        }

        throw new TimeoutException("the server never started");
    }

    private static int[] ChildrenOf(int pid)
    {
        string file = $"/proc/{pid}/task/{pid}/children";
        return File.Exists(file) ? File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray() : [];
    }

    private static async Task WaitUntilGoneAsync(int pid)
    {
        for (var watch = Stopwatch.StartNew(); watch.Elapsed < TimeSpan.FromSeconds(20); await Task.Delay(50))
        {
            // A zombie (state Z) no longer runs: gone for our purposes.
            string stat = $"/proc/{pid}/stat";
            if (!File.Exists(stat) || File.ReadAllText(stat).Split(' ')[2] == "Z")
            {
                return;
            }
        }

        Assert.Fail($"server process {pid} is still running: orphaned");
    }
}
