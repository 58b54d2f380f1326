using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PolicyCompiler.Cli.Tests;

/// <summary>
/// <c>policyc run --admin ... --admin-token-file ...</c> holding a call for approval, answered with
/// <c>policyc approvals</c> (in-process) — the headless flow of docs/approvals.md, over real processes.
/// </summary>
public sealed partial class ApprovalsCommandTests() : CliTest("policyc-approvals-")
{
    private const string Policy = """
        {
          "version": "1",
          "name": "approvals-test",
          "default": "deny",
          "tools": {
            "list_k8s_resources": {},
            "apply_yaml": { "action": "approve", "reason": "applying YAML needs a human" }
          }
        }
        """;

    private string CallLog => Path.Combine(TempDirectory, "calls.jsonl");

    private string[] ToolsThatReachedTheServer() =>
        File.Exists(CallLog) ? File.ReadAllLines(CallLog).Where(l => l.Length > 0).Select(l => (string)JsonNode.Parse(l)!["tool"]!).ToArray() : [];

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex("apr_[0-9a-f]{32}")]
    private static partial Regex ApprovalId();

    private async Task<string> WaitForApprovalAsync(string admin, string tokenFile)
    {
        for (int i = 0; i < 400; i++)
        {
            (int exit, string output, _) = Invoke("approvals", "list", "--admin", admin, "--token-file", tokenFile);
            Match id = ApprovalId().Match(output);
            if (exit == 0 && id.Success)
            {
                Assert.Contains("apply_yaml", output);
                Assert.Contains("applying YAML needs a human", output);
                return id.Value;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("no approval was listed");
    }

    [Fact]
    public async Task HeldCall_IsListedApprovedAndForwarded_DeniedOneNeverArrives()
    {
        string policyFile = Path.Combine(TempDirectory, "policy.json");
        File.WriteAllText(policyFile, Policy);
        string tokenFile = Path.Combine(TempDirectory, "admin-token");
        File.WriteAllText(tokenFile, "s3cret-admin-token-for-tests\n");
        string admin = "127.0.0.1:" + FreePort();
        await using PolicycProcess gateway = PolicycProcess.Start(
            ["run", policyFile, "--state", "memory", "--admin", admin, "--admin-token-file", tokenFile, "--", "dotnet", PolicycProcess.EksLikeServerDll],
            new Dictionary<string, string> { ["EKS_LIKE_SERVER_CALL_LOG"] = CallLog });
        await gateway.InitializeAsync();

        // Approved: the call reaches the server.
        await gateway.SendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"apply_yaml","arguments":{"yaml":"kind: Namespace"}}}""");
        string first = await WaitForApprovalAsync(admin, tokenFile);
        Assert.Empty(ToolsThatReachedTheServer());
        (int approveExit, string approved, string approveError) = Invoke("approvals", "approve", first, "--admin", "http://" + admin, "--token-file", tokenFile, "--by", "bob");
        Assert.True(approveExit == 0, approveError);
        Assert.Contains("approved", approved);
        JsonObject result = (await gateway.ReadResponseAsync(1))["result"]!.AsObject();
        Assert.Contains("apply_yaml ok", (string)result["content"]![0]!["text"]!);

        // Denied with a note: the agent reads it, the server never sees the call.
        await gateway.SendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"apply_yaml","arguments":{"yaml":"kind: Secret"}}}""");
        string second = await WaitForApprovalAsync(admin, tokenFile);
        Assert.Equal(0, Invoke("approvals", "deny", second, "--admin", admin, "--token-file", tokenFile, "--note", "no secrets").ExitCode);
        JsonObject denied = (await gateway.ReadResponseAsync(2))["result"]!.AsObject();
        Assert.True(denied["isError"]!.GetValue<bool>());
        Assert.Contains("no secrets", (string)denied["content"]![0]!["text"]!);

        // Answering again is refused (409); a wrong token too (401); both exit 1 with the gateway's reason.
        (int againExit, _, string againError) = Invoke("approvals", "approve", second, "--admin", admin, "--token-file", tokenFile);
        Assert.Equal(1, againExit);
        Assert.Contains("409", againError);
        File.WriteAllText(Path.Combine(TempDirectory, "wrong"), "not-the-admin-token-at-all");
        (int wrongExit, _, string wrongError) = Invoke("approvals", "list", "--admin", admin, "--token-file", Path.Combine(TempDirectory, "wrong"));
        Assert.Equal(1, wrongExit);
        Assert.Contains("401", wrongError);

        gateway.Process.StandardInput.Close();
        Assert.Equal(0, await gateway.WaitForExitAsync());
        Assert.Equal(["apply_yaml"], ToolsThatReachedTheServer());
    }

    [Fact]
    public void Usage_WithoutAToken_SaysHowToGiveOne()
    {
        Environment.SetEnvironmentVariable("POLICYCOMPILER_ADMIN_TOKEN", null);
        (int exit, _, string error) = Invoke("approvals", "list", "--admin", "127.0.0.1:1");
        Assert.Equal(2, exit);
        Assert.Contains("--token-file", error);
        Assert.NotEqual(0, Invoke("approvals", "approve", "apr_x", "--admin", "127.0.0.1:1", "--scope", "forever").ExitCode);
    }
}
