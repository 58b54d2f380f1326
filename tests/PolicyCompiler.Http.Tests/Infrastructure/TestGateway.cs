using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>The HTTP gateway in-process on 127.0.0.1:0, deciding with the interpreter.</summary>
internal sealed class TestGateway : IAsyncDisposable
{
    public const string Policy = """
        {
          "version": "1",
          "name": "http-tests",
          "default": "deny",
          "hide": ["get_policies_for_role"],
          "tools": {
            "list_k8s_resources": {},
            "slow_progress": {},
            "break_stream": {},
            "add_inline_policy": { "action": "deny", "reason": "IAM changes are not allowed" },
            "CreateCodeConnection": {
              "limits": [ { "counter": "ccc_grant", "window": "minute", "max": 2, "scope": "grant" } ]
            },
            "get_pod_logs": {
              "limits": [ { "counter": "logs_session", "window": "minute", "max": 1, "scope": "session" } ]
            },
            "echo": {},
            "get-sum": { "rules": [ { "when": { "args.a": { "gt": 1000 } }, "action": "deny", "reason": "numbers above 1000 are not summed" } ] },
            "trigger-long-running-operation": {},
            "get-env": { "action": "deny", "reason": "the environment holds secrets" }
          }
        }
        """;

    private readonly StringWriter _log = new();

    private TestGateway(HttpGateway gateway, MemoryStream auditStream)
    {
        Gateway = gateway;
        AuditStream = auditStream;
    }

    public HttpGateway Gateway { get; }

    public MemoryStream AuditStream { get; }

    public Uri Url => Gateway.Url;

    public static IPolicyEvaluator CreateEvaluator(string policy = Policy, TimeProvider? time = null)
    {
        PolicyParseResult parsed = PolicyParser.Parse("http-tests.json", Encoding.UTF8.GetBytes(policy));
        Assert.True(parsed.Policy is not null, string.Join("\n", parsed.Diagnostics));
        return new PolicyInterpreter(parsed.Policy!, new PolicyEvaluatorOptions { Time = time ?? TimeProvider.System });
    }

    public static async Task<TestGateway> StartAsync(Uri upstream, Func<HttpGatewayOptions, HttpGatewayOptions>? configure = null, TimeProvider? time = null)
    {
        var options = new HttpGatewayOptions
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            Upstream = upstream,
            Admin = new IPEndPoint(IPAddress.Loopback, 0),
        };
        options = configure?.Invoke(options) ?? options;
        var logger = new StderrLoggerProvider(LogLevel.Warning, "http-test-gateway").CreateLogger("gateway");
        var audit = new MemoryStream();
        HttpGateway gateway = await HttpGateway.StartAsync(options, CreateEvaluator(time: time), null, logger, time: time);
        return new TestGateway(gateway, audit);
    }

    public ValueTask DisposeAsync() => Gateway.DisposeAsync();
}

/// <summary>Copies options with changes (the options type is init-only).</summary>
internal static class OptionsExtensions
{
    public static HttpGatewayOptions With(this HttpGatewayOptions o,
        GrantTable? grants = null,
        IReadOnlyList<string>? allowedOrigins = null,
        IReadOnlyList<KeyValuePair<string, string>>? upstreamHeaders = null,
        long? maxMessageBytes = null,
        TimeSpan? idle = null) => new()
        {
            Listen = o.Listen,
            Path = o.Path,
            Upstream = o.Upstream,
            UpstreamHeaders = upstreamHeaders ?? o.UpstreamHeaders,
            AllowedOrigins = allowedOrigins ?? o.AllowedOrigins,
            AllowedHosts = o.AllowedHosts,
            Grants = grants ?? o.Grants,
            DefaultGrant = o.DefaultGrant,
            MaxMessageBytes = maxMessageBytes ?? o.MaxMessageBytes,
            SessionIdleTimeout = idle ?? o.SessionIdleTimeout,
            AuditFailOpen = o.AuditFailOpen,
            ShutdownGrace = o.ShutdownGrace,
            Admin = o.Admin,
        };
}
