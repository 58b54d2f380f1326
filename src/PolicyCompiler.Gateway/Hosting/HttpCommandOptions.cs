using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State;

namespace PolicyCompiler.Gateway.Hosting;

/// <summary>
/// The options of <c>GATEWAY http</c> and <c>policyc run http</c> (docs/http.md): the stdio gateway's
/// shared options (grant, audit, sizes, logs) plus the listener, the upstream and the HTTP security
/// settings, and the action that runs the Streamable HTTP gateway until SIGINT/SIGTERM.
/// </summary>
public sealed class HttpCommandOptions
{
    private readonly StdioCommandOptions _common = new();

    /// <summary><c>--listen ADDRESS:PORT</c>.</summary>
    public Option<string> Listen { get; } = new("--listen")
    {
        Description = "Where to listen for MCP clients (default 127.0.0.1:8080; loopback unless told otherwise).",
        DefaultValueFactory = _ => "127.0.0.1:8080",
    };

    /// <summary><c>--upstream URL</c>.</summary>
    public Option<Uri?> Upstream { get; } = new("--upstream")
    {
        Description = "The upstream MCP server's Streamable HTTP endpoint (http:// or https://).",
        CustomParser = result => Uri.TryCreate(result.Tokens[0].Value, UriKind.Absolute, out Uri? uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : Fail<Uri>(result, $"--upstream: '{result.Tokens[0].Value}' is not an http(s) URL."),
    };

    /// <summary><c>--upstream-header 'NAME: VALUE'</c> (repeatable).</summary>
    public Option<string[]> UpstreamHeaders { get; } = new("--upstream-header")
    {
        Description = "A header sent upstream with every request, 'NAME: VALUE' (the gateway's own credentials; the client's Authorization is never forwarded). Repeatable.",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary><c>--allowed-origin ORIGIN</c> (repeatable).</summary>
    public Option<string[]> AllowedOrigins { get; } = new("--allowed-origin")
    {
        Description = "An Origin allowed besides loopback ones (e.g. https://app.example.com; * for any). Repeatable.",
    };

    /// <summary><c>--allowed-host HOST</c> (repeatable).</summary>
    public Option<string[]> AllowedHosts { get; } = new("--allowed-host")
    {
        Description = "A Host name allowed besides loopback ones (needed when listening on a non-loopback address; * for any). Repeatable.",
    };

    /// <summary><c>--grants FILE</c>.</summary>
    public Option<string?> Grants { get; } = new("--grants")
    {
        Description = "Require Authorization: Bearer TOKEN; FILE maps grant names to 'sha256:<hex>' of their tokens (policyc grant new NAME).",
    };

    /// <summary><c>--path PATH</c>.</summary>
    public Option<string> Path { get; } = new("--path")
    {
        Description = "The MCP endpoint path (default /mcp).",
        DefaultValueFactory = _ => HttpGatewayOptions.DefaultPath,
    };

    /// <summary><c>--session-idle-timeout SECONDS</c>.</summary>
    public Option<double> SessionIdleTimeout { get; } = new("--session-idle-timeout")
    {
        Description = "Forget a session unused for this many seconds (default 1800).",
        DefaultValueFactory = _ => 1800.0,
    };

    /// <summary><c>--admin ADDRESS:PORT</c>.</summary>
    public Option<string?> Admin { get; } = new("--admin")
    {
        Description = "Serve /healthz, /readyz, /metrics (Prometheus) and the approvals API (/approvals) on this address (e.g. 127.0.0.1:9090).",
    };

    /// <summary><c>-- COMMAND [ARGS...]</c>: a stdio upstream, one child per session, instead of <c>--upstream</c>.</summary>
    public Argument<string[]> Command { get; } = new("command")
    {
        Description = "Start this stdio MCP server (after --) once per session instead of proxying to --upstream.",
        Arity = ArgumentArity.ZeroOrMore,
    };

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Add(Listen);
        command.Add(Upstream);
        command.Add(UpstreamHeaders);
        command.Add(AllowedOrigins);
        command.Add(AllowedHosts);
        command.Add(Grants);
        command.Add(Path);
        command.Add(SessionIdleTimeout);
        command.Add(Admin);
        command.Add(_common.Grant);
        command.Add(_common.Audit);
        command.Add(_common.AuditFailOpen);
        command.Add(_common.AuditArguments);
        command.Add(_common.MaxMessageBytes);
        command.Add(_common.LogLevel);
        command.Add(_common.ShutdownGrace);
        command.Add(_common.State);
        command.Add(_common.StatePrefix);
        command.Add(_common.StateFailMode);
        command.Add(_common.StateTimeout);
        command.Add(_common.AdminTokenFile);
        command.Add(Command);
        command.Validators.Add(result =>
        {
            bool hasUpstream = result.GetResult(Upstream) is not null; // not GetValue: that throws when the URL is invalid
            bool hasCommand = (result.GetValue(Command) ?? []).Length > 0;
            if (hasUpstream == hasCommand)
            {
                result.AddError(hasUpstream
                    ? "Give either --upstream URL or -- COMMAND [ARGS...], not both."
                    : "Missing the upstream: --upstream URL or -- COMMAND [ARGS...].");
            }
        });

        // Option validators, not a command validator: only they see the options' default values.
        _common.State.Validators.Add(result =>
        {
            if (!StateSpecification.TryParse(result.GetValueOrDefault<string>(), out _, out string? error))
            {
                result.AddError(error);
            }
        });
        _common.MaxMessageBytes.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long>() < 64)
            {
                result.AddError("--max-message-bytes must be at least 64.");
            }
        });
        SessionIdleTimeout.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() <= 0)
            {
                result.AddError("--session-idle-timeout must be positive.");
            }
        });
        UpstreamHeaders.Validators.Add(result =>
        {
            foreach (string header in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (!TryParseHeader(header, out _))
                {
                    result.AddError($"--upstream-header: '{header}' is not 'NAME: VALUE'.");
                }
            }
        });
        Listen.Validators.Add(result =>
        {
            if (!IPEndPoint.TryParse(result.GetValueOrDefault<string>() ?? string.Empty, out _))
            {
                result.AddError("--listen: expected ADDRESS:PORT, e.g. 127.0.0.1:8080.");
            }
        });
        Admin.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } admin && !IPEndPoint.TryParse(admin, out _))
            {
                result.AddError("--admin: expected ADDRESS:PORT, e.g. 127.0.0.1:9090.");
            }
        });
    }

    /// <summary>Runs the Streamable HTTP gateway with the parsed options until SIGINT/SIGTERM or cancellation.</summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="evaluatorFactory">Creates the evaluator (compiled or interpreted).</param>
    /// <param name="policy">What it enforces.</param>
    /// <param name="gatewayName">The gateway's name.</param>
    /// <param name="cancellationToken">Stops the gateway.</param>
    public async Task<int> RunAsync(
        ParseResult parseResult,
        Func<PolicyEvaluatorOptions, IPolicyEvaluator> evaluatorFactory,
        PolicyInfo policy,
        string gatewayName,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parseResult);
        ArgumentNullException.ThrowIfNull(evaluatorFactory);
        ArgumentNullException.ThrowIfNull(policy);
        using var logs = new StderrLoggerProvider(parseResult.GetValue(_common.LogLevel), gatewayName);
        ILogger logger = logs.CreateLogger(gatewayName);
        TextWriter error = parseResult.InvocationConfiguration.Error;

        GrantTable? grants = null;
        if (parseResult.GetValue(Grants) is { } grantsPath)
        {
            try
            {
                grants = GrantTable.Load(grantsPath);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                await error.WriteLineAsync($"{gatewayName}: error: --grants {grantsPath}: {e.Message}").ConfigureAwait(false);
                return 2;
            }
        }

        var headers = new List<KeyValuePair<string, string>>();
        foreach (string header in parseResult.GetValue(UpstreamHeaders) ?? [])
        {
            TryParseHeader(header, out KeyValuePair<string, string> parsed);
            headers.Add(parsed);
        }

        if (!_common.TryLoadAdminToken(parseResult, gatewayName, out Enforcement.Approvals.AdminToken? adminToken))
        {
            return 2;
        }

        string[] commandLine = parseResult.GetValue(Command) ?? [];
        var options = new HttpGatewayOptions
        {
            Listen = IPEndPoint.Parse(parseResult.GetValue(Listen)!),
            Path = parseResult.GetValue(Path) ?? HttpGatewayOptions.DefaultPath,
            // With a command the upstream "URL" only names the children in logs; the handler below answers every request.
            Upstream = commandLine.Length > 0 ? new Uri("http://stdio-child.invalid/mcp") : parseResult.GetValue(Upstream),
            UpstreamHeaders = headers,
            AllowedOrigins = parseResult.GetValue(AllowedOrigins) ?? [],
            AllowedHosts = parseResult.GetValue(AllowedHosts) ?? [],
            Grants = grants,
            DefaultGrant = parseResult.GetValue(_common.Grant) ?? "default",
            MaxMessageBytes = parseResult.GetValue(_common.MaxMessageBytes),
            SessionIdleTimeout = TimeSpan.FromSeconds(parseResult.GetValue(SessionIdleTimeout)),
            AuditFailOpen = parseResult.GetValue(_common.AuditFailOpen),
            ShutdownGrace = TimeSpan.FromSeconds(parseResult.GetValue(_common.ShutdownGrace)),
            Admin = parseResult.GetValue(Admin) is { } admin ? IPEndPoint.Parse(admin) : null,
            AdminToken = adminToken,
        };

        // The same counter stores as stdio (docs/state.md): replicas behind a load balancer share Redis.
        StateSpecification.TryParse(parseResult.GetValue(_common.State), out StateSpecification? state, out _);
        state ??= StateSpecification.Default;
        ICounterStore counters = state.Open(
            parseResult.GetValue(_common.StatePrefix) ?? string.Empty,
            parseResult.GetValue(_common.StateFailMode),
            TimeSpan.FromMilliseconds(parseResult.GetValue(_common.StateTimeout)),
            logs.CreateLogger(gatewayName + ".state"));
        using var ownedCounters = counters as IDisposable;
        IPolicyEvaluator evaluator = evaluatorFactory(new PolicyEvaluatorOptions { Counters = counters });
        string? auditPath = parseResult.GetValue(_common.Audit);
        AuditLog? audit = auditPath is null ? null : AuditLog.Open(auditPath, new AuditLogOptions
        {
            GatewayName = gatewayName,
            PolicySha256 = policy.Sha256,
            IncludeArguments = parseResult.GetValue(_common.AuditArguments),
        }, logger);

        // SIGINT/SIGTERM stop the listener gracefully (the root command leaves signals to the gateway).
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var registrations = new List<PosixSignalRegistration>();
        if (!OperatingSystem.IsWindows())
        {
            foreach (PosixSignal signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            {
                registrations.Add(PosixSignalRegistration.Create(signal, context =>
                {
                    context.Cancel = true;
                    stop.Cancel();
                }));
            }
        }

        GatewayLog.Started(logger, policy.Name, policy.Sha256, policy.Mode.ToString(), grants is null ? options.DefaultGrant : $"{grants.Count} grant(s) from --grants");
        try
        {
            HttpGateway gateway;
            try
            {
                HttpMessageHandler? children = commandLine.Length > 0
                    ? new ChildProcessHandler(commandLine[0], commandLine[1..], options.SessionIdleTimeout, options.ShutdownGrace, logger, options.MaxMessageBytes)
                    : null;
                gateway = await HttpGateway.StartAsync(options, evaluator, audit, logger, children, cancellationToken: stop.Token).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                await error.WriteLineAsync($"{gatewayName}: error: cannot listen on {options.Listen}: {e.Message}").ConfigureAwait(false);
                return 1;
            }

            await using (gateway.ConfigureAwait(false))
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }

            return 0;
        }
        finally
        {
            foreach (PosixSignalRegistration registration in registrations)
            {
                registration.Dispose();
            }

            if (audit is not null)
            {
                await audit.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Parses <c>NAME: VALUE</c>.</summary>
    internal static bool TryParseHeader(string text, out KeyValuePair<string, string> header)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string name = colon > 0 ? text[..colon].Trim() : string.Empty;
        header = new KeyValuePair<string, string>(name, colon > 0 ? text[(colon + 1)..].Trim() : string.Empty);
        if (name.Length == 0)
        {
            return false;
        }

        foreach (char c in name)
        {
            // RFC 9110 §5.6.2 token characters.
            if (c <= ' ' || c >= 127 || "\"(),/:;<=>?@[\\]{}".Contains(c, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static T? Fail<T>(System.CommandLine.Parsing.ArgumentResult result, string message)
    {
        result.AddError(message);
        return default;
    }
}
