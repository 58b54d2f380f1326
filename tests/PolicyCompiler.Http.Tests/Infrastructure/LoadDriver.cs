using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>
/// Many concurrent MCP sessions through a gateway for a fixed time. Each worker loops: open a session
/// (initialize), call tools whose decisions are known in advance — allowed, denied, limited per session,
/// limited per grant — checking every answer, then end the session (DELETE) and open the next.
/// Nothing here is timed as an assertion; latencies are only reported.
/// </summary>
internal sealed class LoadDriver
{
    /// <summary>The policy the load runs under. Sliding one-hour windows: the limits cannot roll over within a run.</summary>
    public const string Policy = """
        {
          "version": "1",
          "name": "http-load",
          "default": "deny",
          "tools": {
            "list_k8s_resources": {},
            "add_inline_policy": { "action": "deny", "reason": "IAM changes are not allowed" },
            "get_pod_logs": { "limits": [ { "counter": "logs_session", "window": "hour", "max": 1, "scope": "session" } ] },
            "CreateCodeConnection": { "limits": [ { "counter": "ccc_grant", "window": "hour", "max": 25, "scope": "grant" } ] }
          }
        }
        """;

    /// <summary>The grant-scoped limit of <see cref="Policy"/>.</summary>
    public const int GrantLimit = 25;

    private readonly ConcurrentQueue<string> _errors = new();
    private readonly ConcurrentDictionary<int, int> _grantAdmitted = new();
    private readonly ConcurrentDictionary<int, int> _grantTried = new();
    private readonly ConcurrentBag<double[]> _latencies = new();
    private int _sessions;
    private int _allowed;
    private int _denied;
    private int _sessionLimited;
    private int _grantLimited;
    private int _grantAttempts;

    /// <summary>Sessions opened (each initialized, each ended with DELETE).</summary>
    public int Sessions => _sessions;

    /// <summary>Calls answered by the upstream as expected: list_k8s_resources, the first get_pod_logs of a session, admitted CreateCodeConnection.</summary>
    public int Allowed => _allowed;

    /// <summary>add_inline_policy calls, each answered with the policy's deny.</summary>
    public int Denied => _denied;

    /// <summary>Second get_pod_logs calls of a session, each rate-limited.</summary>
    public int SessionLimited => _sessionLimited;

    /// <summary>CreateCodeConnection calls refused by the grant's limit.</summary>
    public int GrantLimited => _grantLimited;

    /// <summary>CreateCodeConnection calls made.</summary>
    public int GrantAttempts => _grantAttempts;

    /// <summary>Admitted CreateCodeConnection calls per grant index.</summary>
    public IReadOnlyDictionary<int, int> GrantAdmitted => _grantAdmitted;

    /// <summary>CreateCodeConnection calls made per grant index.</summary>
    public IReadOnlyDictionary<int, int> GrantTried => _grantTried;

    /// <summary>Transport errors and wrong answers, as text.</summary>
    public IReadOnlyCollection<string> Errors => _errors;

    /// <summary>Completed tools/call round trips.</summary>
    public int Calls => _allowed + _denied + _sessionLimited + _grantLimited;

    /// <summary>Runs <paramref name="workers"/> concurrent session loops until <paramref name="duration"/> has passed.</summary>
    /// <param name="workers">Concurrent sessions.</param>
    /// <param name="grants">Grant count; worker i uses grant i % grants.</param>
    /// <param name="duration">How long to keep opening sessions and calling.</param>
    /// <param name="roundsPerSession">Rounds of (allowed, denied, grant-limited) calls before the session ends.</param>
    /// <param name="connect">Opens a session for a grant index over the given HTTP client.</param>
    public async Task RunAsync(int workers, int grants, TimeSpan duration, int roundsPerSession, Func<int, HttpClient, Task<McpClient>> connect)
    {
        var clock = Stopwatch.StartNew();
        var tasks = new Task[workers];
        for (int i = 0; i < workers; i++)
        {
            int grant = i % grants;
            tasks[i] = Task.Run(() => WorkerAsync(grant, clock, duration, roundsPerSession, connect));
        }

        await Task.WhenAll(tasks);
    }

    /// <summary>The <paramref name="quantile"/> (0…1) of the call latencies, in milliseconds.</summary>
    public double LatencyMilliseconds(double quantile)
    {
        double[] all = _latencies.SelectMany(l => l).Order().ToArray();
        return all.Length == 0 ? double.NaN : all[Math.Min(all.Length - 1, (int)(quantile * all.Length))];
    }

    private async Task WorkerAsync(int grant, Stopwatch clock, TimeSpan duration, int rounds, Func<int, HttpClient, Task<McpClient>> connect)
    {
        var latencies = new List<double>(4096);
        try
        {
            while (clock.Elapsed < duration)
            {
                // Each session has its own HTTP client, disposed after the session: its connections close then, so whatever
                // stays open on the gateway's side afterwards is the gateway's (an SDK client left to create its own was
                // seen keeping connections ESTABLISHED here long after its DisposeAsync).
                using var http = new HttpClient { Timeout = Clients.Timeout };
                McpClient client;
                try
                {
                    client = await connect(grant, http);
                }
                catch (Exception e)
                {
                    Fail("connect", e);
                    await Task.Delay(100);
                    continue;
                }

                Interlocked.Increment(ref _sessions);
                await using (client)
                {
                    try
                    {
                        // Session scope: the first get_pod_logs of every session is admitted, the second is not.
                        Expect(await CallAsync(client, "get_pod_logs", latencies), "get_pod_logs", null, ref _allowed);
                        Expect(await CallAsync(client, "get_pod_logs", latencies), "get_pod_logs", "rate_limited", ref _sessionLimited);
                        for (int round = 0; round < rounds && clock.Elapsed < duration; round++)
                        {
                            Expect(await CallAsync(client, "list_k8s_resources", latencies), "list_k8s_resources", null, ref _allowed);
                            Expect(await CallAsync(client, "add_inline_policy", latencies), "add_inline_policy", "deny", ref _denied);

                            // Grant scope: the first GrantLimit calls of a grant, over all its sessions, are admitted.
                            Interlocked.Increment(ref _grantAttempts);
                            _grantTried.AddOrUpdate(grant, 1, static (_, n) => n + 1);
                            CallToolResult ccc = await CallAsync(client, "CreateCodeConnection", latencies);
                            if (ccc.IsError == true)
                            {
                                Expect(ccc, "CreateCodeConnection", "rate_limited", ref _grantLimited);
                            }
                            else
                            {
                                Expect(ccc, "CreateCodeConnection", null, ref _allowed);
                                _grantAdmitted.AddOrUpdate(grant, 1, static (_, n) => n + 1);
                            }
                        }
                    }
                    catch (Exception e)
                    {
                        Fail("call", e);
                    }
                }
            }
        }
        finally
        {
            _latencies.Add([.. latencies]);
        }
    }

    private static async Task<CallToolResult> CallAsync(McpClient client, string tool, List<double> latencies)
    {
        using var timeout = new CancellationTokenSource(Clients.Timeout);
        long start = Stopwatch.GetTimestamp();
        CallToolResult result = await client.CallToolAsync(tool, new Dictionary<string, object?> { ["cluster"] = "load" }, cancellationToken: timeout.Token);
        latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        return result;
    }

    /// <summary>Checks one answer: null <paramref name="decision"/> means the upstream's own result; otherwise the gateway's blocked-call result with that decision.</summary>
    private void Expect(CallToolResult result, string tool, string? decision, ref int counter)
    {
        string text = result.Content.Count > 0 && result.Content[0] is TextContentBlock block ? block.Text : "";
        bool right = decision is null
            ? result.IsError != true && text.StartsWith(tool + " ok", StringComparison.Ordinal)
            : result.IsError == true && result.Meta?["policycompiler/decision"]?["decision"]?.GetValue<string>() == decision;
        if (right)
        {
            Interlocked.Increment(ref counter);
        }
        else
        {
            _errors.Enqueue($"{tool}: expected {decision ?? "the upstream's result"}, got isError={result.IsError} '{text}'");
        }
    }

    private void Fail(string step, Exception e)
    {
        if (_errors.Count < 1000)
        {
            _errors.Enqueue($"{step}: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>One line of figures for the test output and docs/http.md.</summary>
    public string Describe(TimeSpan elapsed) => string.Create(CultureInfo.InvariantCulture,
        $"sessions {Sessions}, calls {Calls} ({Calls / elapsed.TotalSeconds:F0}/s), allowed {Allowed}, denied {Denied}, session-limited {SessionLimited}, grant-limited {GrantLimited}, " +
        $"latency p50 {LatencyMilliseconds(0.5):F2} ms, p99 {LatencyMilliseconds(0.99):F2} ms, max {LatencyMilliseconds(1):F1} ms");

    /// <summary>The first few errors, for an assertion message.</summary>
    public string ErrorSample()
    {
        var text = new StringBuilder();
        foreach (string error in _errors.Take(10))
        {
            text.AppendLine(error);
        }

        return text.ToString();
    }
}
