using System.Security.Cryptography;
using System.Text.Json.Nodes;
using PolicyCompiler.EndToEnd.Tests.Infrastructure;

namespace PolicyCompiler.EndToEnd.Tests;

/// <summary>The native gateway as a process: identity, shutdown, signals, upstream failure, audit.</summary>
[Collection(NativeGatewayCollection.Name)]
public sealed class LifecycleTests(NativeGatewayFixture gateway) : IDisposable
{
    private readonly CallLog _calls = new();
    private readonly string _audit = Path.Combine(Path.GetTempPath(), $"e2e-audit-{Guid.NewGuid():N}.jsonl");

    public void Dispose()
    {
        _calls.Dispose();
        try { File.Delete(_audit); } catch (IOException) { }
    }

    [Fact]
    public async Task Version_names_the_policy_and_its_hash()
    {
        var result = await ProcessRunner.RunAsync(gateway.GatewayPath, ["--version"], TimeSpan.FromSeconds(30));
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(gateway.PolicyPath)));

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("e2e", result.StandardOutput);
        Assert.Contains(hash, result.StandardOutput);
    }

    [Fact]
    public async Task Policy_command_prints_the_compiled_in_policy()
    {
        var result = await ProcessRunner.RunAsync(gateway.GatewayPath, ["policy"], TimeSpan.FromSeconds(30));

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(File.ReadAllText(gateway.PolicyPath).TrimEnd(), result.StandardOutput.TrimEnd());
    }

    [Fact]
    public async Task Closing_stdin_stops_the_child_and_exits_with_its_status()
    {
        await using var session = RawSession.Start(gateway.GatewayPath, ["stdio", "--", "sh", "-c", "cat >/dev/null; exit 7"]);
        session.CloseInput();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await session.Process.WaitForExitAsync(cts.Token);

        Assert.Equal(7, session.Process.ExitCode);
    }

    [Fact]
    public async Task A_child_that_ignores_eof_is_killed_after_the_grace_period()
    {
        await using var session = RawSession.Start(gateway.GatewayPath, ["stdio", "--shutdown-grace", "1", "--", "sh", "-c", "trap '' TERM; sleep 300"]);
        var child = await WaitForChildAsync(session.Process.Id);
        session.CloseInput();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await session.Process.WaitForExitAsync(cts.Token);

        await WaitUntilGoneAsync(child);
    }

    [Fact]
    public async Task Killing_the_gateway_outright_leaves_no_orphan_server()
    {
        await using var session = RawSession.Start(gateway.GatewayPath, ["stdio", "--state", "memory", "--", "sleep", "300"]);
        var child = await WaitForChildAsync(session.Process.Id);

        session.Process.Kill(); // SIGKILL: no handler runs in the gateway

        await WaitUntilGoneAsync(child);
    }

    [Fact]
    public async Task Killing_the_http_gateway_outright_leaves_no_orphan_session_server()
    {
        // One child per MCP session, each started off the main thread (by the gateway's spawner thread).
        string listen = "127.0.0.1:" + LoopbackPort.Free();
        await using var gatewayProcess = RawSession.Start(gateway.GatewayPath, ["http", "--listen", listen, "--state", "memory", "--", "dotnet", Repo.EksLikeServerDll]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        await WaitForListenerAsync(listen);
        for (int session = 0; session < 2; session++)
        {
            using var initialize = new HttpRequestMessage(HttpMethod.Post, $"http://{listen}/mcp")
            {
                Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}""", System.Text.Encoding.UTF8, "application/json"),
            };
            initialize.Headers.Accept.ParseAdd("application/json, text/event-stream");
            using HttpResponseMessage answer = await http.SendAsync(initialize);
            Assert.Equal(System.Net.HttpStatusCode.OK, answer.StatusCode);
            Assert.True(answer.Headers.Contains("Mcp-Session-Id"));
        }

        int[] children = ChildrenOf(gatewayProcess.Process.Id);
        Assert.Equal(2, children.Length);

        gatewayProcess.Process.Kill(); // SIGKILL: no handler runs in the gateway

        foreach (int child in children)
        {
            await WaitUntilGoneAsync(child);
        }
    }

    [Fact]
    public async Task Upstream_death_answers_pending_requests_and_exits_non_zero()
    {
        // The "server" reads the initialize request and dies without answering.
        await using var session = RawSession.Start(gateway.GatewayPath, ["stdio", "--", "sh", "-c", "head -n 1 >/dev/null; exit 3"]);
        await session.SendAsync("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""");

        var response = await session.ReadResponseAsync(1);
        Assert.True(response["error"]!["code"]!.GetValue<int>() < 0);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await session.Process.WaitForExitAsync(cts.Token);
        Assert.NotEqual(0, session.Process.ExitCode);
        Assert.Contains("upstream", (await session.StandardErrorAsync()).ToLowerInvariant());
    }

    [Fact]
    public async Task Sigterm_is_forwarded_and_the_audit_log_keeps_every_decision()
    {
        await using var session = RawSession.Start(
            gateway.GatewayPath,
            ["stdio", "--grant", "auditor", "--audit", _audit, "--", "dotnet", Repo.EksLikeServerDll],
            new Dictionary<string, string> { ["EKS_LIKE_SERVER_CALL_LOG"] = _calls.Path });
        await session.InitializeAsync();
        await session.SendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_k8s_resources","arguments":{"kind":"Pod"}}}""");
        await session.ReadResponseAsync(1);
        await session.SendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_inline_policy","arguments":{"role":"x"}}}""");
        await session.ReadResponseAsync(2);
        var child = await WaitForChildAsync(session.Process.Id);

        await ProcessRunner.RunAsync("kill", ["-TERM", session.Process.Id.ToString()], TimeSpan.FromSeconds(10));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await session.Process.WaitForExitAsync(cts.Token);
        await WaitUntilGoneAsync(child);

        var lines = File.ReadAllLines(_audit).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var allow = Assert.Single(lines, l => (string?)l["tool"] == "list_k8s_resources" && (string?)l["decision"] == "allow");
        var deny = Assert.Single(lines, l => (string?)l["tool"] == "add_inline_policy");
        Assert.Equal("deny", (string?)deny["decision"]);
        Assert.Equal("/tools/add_inline_policy/action", (string?)deny["rule"]);
        Assert.Equal("auditor", (string?)deny["grant"]);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(gateway.PolicyPath))), (string?)deny["policySha256"]);
        Assert.Equal(64, ((string?)allow["argumentsSha256"])?.Length);
    }

    /// <summary>Waits until something accepts connections on <paramref name="endpoint"/> (host:port).</summary>
    private static async Task WaitForListenerAsync(string endpoint)
    {
        string[] parts = endpoint.Split(':');
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                using var probe = new System.Net.Sockets.TcpClient();
                await probe.ConnectAsync(parts[0], int.Parse(parts[1]));
                return;
            }
            catch (System.Net.Sockets.SocketException) when (attempt < 200)
            {
                await Task.Delay(50);
            }
        }
    }

    /// <summary>The children of every thread of <paramref name="parent"/> (Linux /proc).</summary>
    private static int[] ChildrenOf(int parent) =>
        Directory.GetDirectories($"/proc/{parent}/task")
            .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse)
            .ToArray();

    /// <summary>The gateway's child process id (Linux /proc), waiting until it has started.</summary>
    private static async Task<int> WaitForChildAsync(int parent)
    {
        for (int i = 0; i < 200; i++)
        {
            var file = $"/proc/{parent}/task/{parent}/children";
            if (File.Exists(file) && File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries) is [var first, ..])
            {
                return int.Parse(first);
            }
            await Task.Delay(50);
        }
        throw new TimeoutException("the gateway started no child process");
    }

    private static async Task WaitUntilGoneAsync(int pid)
    {
        for (int i = 0; i < 200; i++)
        {
            // A zombie (state Z) is gone for our purposes: it no longer runs.
            var stat = $"/proc/{pid}/stat";
            if (!File.Exists(stat) || File.ReadAllText(stat).Split(' ')[2] == "Z") return;
            await Task.Delay(50);
        }
        Assert.Fail($"child process {pid} is still running: orphaned");
    }
}
