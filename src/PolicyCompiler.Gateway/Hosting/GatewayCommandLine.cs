using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Gateway.Transport.StreamableHttp;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State;
using PolicyCompiler.State.Resilience;

namespace PolicyCompiler.Gateway.Hosting;

/// <summary>
/// The command line of a built gateway (docs/gateway.md): <c>GATEWAY stdio [options] -- COMMAND [ARGS...]</c>,
/// <c>GATEWAY policy</c>, <c>GATEWAY --version</c>. Every compiled gateway's <c>Program.cs</c> is one call to
/// <see cref="RunAsync"/> with the generated evaluator's factory; <c>policyc run</c> reuses
/// <see cref="StdioCommandOptions"/> with the interpreter.
/// </summary>
public static class GatewayCommandLine
{
    /// <summary>The environment variable that supplies <c>--grant</c> when the option is absent.</summary>
    public const string GrantEnvironmentVariable = "POLICYCOMPILER_GRANT";

    /// <summary>Parses <paramref name="args"/> and runs the gateway; returns the process exit status.</summary>
    /// <param name="args">The command line.</param>
    /// <param name="evaluatorFactory">Creates the evaluator (the generated <c>CompiledPolicy.Create</c>).</param>
    /// <param name="policy">What the evaluator enforces (the generated <c>CompiledPolicy.Info</c>).</param>
    /// <param name="gatewayName">The gateway's name; the executable's name when null.</param>
    public static Task<int> RunAsync(string[] args, Func<PolicyEvaluatorOptions, IPolicyEvaluator> evaluatorFactory, PolicyInfo policy, string? gatewayName = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (TryRunInternalCommand(args, out int exitCode))
        {
            return Task.FromResult(exitCode);
        }

        Command root = CreateRootCommand(evaluatorFactory, policy, gatewayName);
        // Signals are ours: the stdio command forwards them to the upstream and exits with its status.
        return root.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
    }

    /// <summary>
    /// Runs the internal command of the upstream launcher when <paramref name="args"/> is one (the gateway
    /// re-executes itself to start the upstream server, see docs/gateway.md "No orphans"); otherwise
    /// records that this entry point routes it, which enables the launcher. Every entry point that runs
    /// the stdio gateway calls this first (<see cref="RunAsync"/> does; so does <c>policyc</c>'s Main).
    /// </summary>
    /// <param name="args">The process's command line.</param>
    /// <param name="exitCode">The internal command's exit status (it returns only when it failed).</param>
    /// <returns>True when <paramref name="args"/> was the internal command.</returns>
    public static bool TryRunInternalCommand(string[] args, out int exitCode)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Length > 0 && args[0] == ParentDeathLauncher.InternalCommand)
        {
            exitCode = ParentDeathLauncher.Exec(args);
            return true;
        }

        ParentDeathLauncher.EnableForThisProcess();
        exitCode = 0;
        return false;
    }

    /// <summary>
    /// Builds the root command, named after the gateway (help and usage say <c>eks-gateway stdio ...</c>,
    /// not the host assembly's name); tests parse and invoke it with their own output writers.
    /// </summary>
    /// <param name="evaluatorFactory">Creates the evaluator.</param>
    /// <param name="policy">What it enforces.</param>
    /// <param name="gatewayName">The gateway's name; the executable's file name when null.</param>
    public static Command CreateRootCommand(Func<PolicyEvaluatorOptions, IPolicyEvaluator> evaluatorFactory, PolicyInfo policy, string? gatewayName = null)
    {
        ArgumentNullException.ThrowIfNull(evaluatorFactory);
        ArgumentNullException.ThrowIfNull(policy);
        string name = gatewayName ?? DefaultGatewayName();

        // Not RootCommand: its name is fixed to RootCommand.ExecutableName, which is the host assembly's
        // name, not the file the user named the gateway. A plain command parses the same as a root.
        var root = new Command(name, $"MCP policy gateway '{name}' enforcing policy '{policy.Name}' (sha256 {policy.Sha256}).");
        root.Options.Add(new HelpOption());
        root.Options.Add(new VersionOption { Action = new PrintAction(VersionText(name, policy)) });

        var stdio = new Command("stdio", "Start COMMAND as the upstream MCP server and proxy this process's stdin/stdout to it, enforcing the policy.");
        var options = new StdioCommandOptions();
        options.AddTo(stdio);
        stdio.SetAction((parseResult, cancellationToken) =>
            options.RunAsync(parseResult, evaluatorOptions => evaluatorFactory(evaluatorOptions), policy, name, cancellationToken));
        root.Add(stdio);

        var http = new Command("http", "Serve MCP over Streamable HTTP and proxy to an upstream URL, enforcing the policy (docs/http.md).");
        var httpOptions = new HttpCommandOptions();
        httpOptions.AddTo(http);
        http.SetAction((parseResult, cancellationToken) =>
            httpOptions.RunAsync(parseResult, evaluatorOptions => evaluatorFactory(evaluatorOptions), policy, name, cancellationToken));
        root.Add(http);

        var policyCommand = new Command("policy", "Print the compiled-in policy, exactly as it was built.");
        policyCommand.SetAction(parseResult =>
        {
            parseResult.InvocationConfiguration.Output.Write(policy.SourceText);
            if (!policy.SourceText.EndsWith('\n'))
            {
                parseResult.InvocationConfiguration.Output.WriteLine();
            }

            return 0;
        });
        root.Add(policyCommand);
        return root;
    }

    /// <summary>The <c>--version</c> text: gateway name, policy name, policy SHA-256.</summary>
    public static string VersionText(string gatewayName, PolicyInfo policy) =>
        $"{gatewayName} (policy {policy.Name}, sha256 {policy.Sha256}, mode {policy.Mode.ToString().ToLowerInvariant()})";

    /// <summary>The executable's file name (<c>.exe</c> dropped), or <c>gateway</c> when unknown.</summary>
    internal static string DefaultGatewayName()
    {
        string? path = Environment.ProcessPath;
        if (string.IsNullOrEmpty(path))
        {
            return "gateway";
        }

        if (ParentDeathLauncher.IsDotnetHost(path))
        {
            // `dotnet gateway.dll` (a framework-dependent build): the application is the .dll.
            return Path.GetFileNameWithoutExtension(Environment.GetCommandLineArgs()[0]);
        }

        // Not GetFileNameWithoutExtension: gateway names may contain dots (my.gateway); only drop .exe.
        string name = Path.GetFileName(path);
        return name.EndsWith(".exe", StringComparison.OrdinalIgnoreCase) ? name[..^4] : name;
    }

    private sealed class PrintAction(string text) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(text);
            return 0;
        }
    }
}

/// <summary>
/// The options and argument shared by <c>GATEWAY stdio</c> and <c>policyc run</c>, and the action that
/// runs the stdio gateway with them.
/// </summary>
public sealed class StdioCommandOptions
{
    /// <summary><c>--grant NAME</c>.</summary>
    public Option<string> Grant { get; } = new("--grant")
    {
        Description = $"The identity for grant-scoped limits and conditions (default: ${GatewayCommandLine.GrantEnvironmentVariable}, else 'default').",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable(GatewayCommandLine.GrantEnvironmentVariable) is { Length: > 0 } grant ? grant : "default",
    };

    /// <summary><c>--audit FILE</c>.</summary>
    public Option<string?> Audit { get; } = new("--audit")
    {
        Description = "Append one JSON line per decision to FILE. If it cannot be written, tool calls are refused.",
    };

    /// <summary><c>--audit-fail-open</c>.</summary>
    public Option<bool> AuditFailOpen { get; } = new("--audit-fail-open")
    {
        Description = "Keep forwarding allowed calls when the audit log cannot be written.",
    };

    /// <summary><c>--audit-arguments</c>.</summary>
    public Option<bool> AuditArguments { get; } = new("--audit-arguments")
    {
        Description = "Also write the canonical tool arguments to the audit log (by default only their SHA-256).",
    };

    /// <summary><c>--max-message-bytes N</c>.</summary>
    public Option<long> MaxMessageBytes { get; } = new("--max-message-bytes")
    {
        Description = "The longest JSON-RPC message accepted in either direction (default 4 MiB).",
        DefaultValueFactory = _ => GatewayOptions.DefaultMaxMessageBytes,
    };

    /// <summary><c>--log-level LEVEL</c>.</summary>
    public Option<LogLevel> LogLevel { get; } = new("--log-level")
    {
        Description = "The least severe stderr log level: Trace, Debug, Information, Warning, Error, Critical, None.",
        DefaultValueFactory = _ => Microsoft.Extensions.Logging.LogLevel.Warning,
    };

    /// <summary><c>--shutdown-grace SECONDS</c>.</summary>
    public Option<double> ShutdownGrace { get; } = new("--shutdown-grace")
    {
        Description = "Seconds the upstream may take to exit after the client disconnects or a signal, before it is killed (default 5).",
        DefaultValueFactory = _ => 5.0,
    };

    /// <summary><c>--state memory | sqlite:PATH | redis://host:port/db</c> (docs/state.md).</summary>
    public Option<string> State { get; } = new("--state")
    {
        Description = "Where limit counters live: memory (this process only), sqlite:PATH (shared by the gateways of this machine, kept across restarts; "
            + "default: a file in the per-user state directory, $XDG_STATE_HOME/policycompiler/counters.db), or redis://host:port/db (shared by replicas).",
        DefaultValueFactory = _ => "sqlite:" + StateSpecification.DefaultSqlitePath(),
    };

    /// <summary><c>--state-prefix TEXT</c>.</summary>
    public Option<string> StatePrefix { get; } = new("--state-prefix")
    {
        Description = "Prefix of every counter key in the store (separates gateways that share a store but not their counters).",
        DefaultValueFactory = _ => "policycompiler:",
    };

    /// <summary><c>--state-fail-mode closed|open</c>.</summary>
    public Option<StateFailMode> StateFailMode { get; } = new("--state-fail-mode")
    {
        Description = "When the counter store is unreachable or slower than --state-timeout: closed (default) denies calls that need a counter, open admits them uncounted.",
        DefaultValueFactory = _ => PolicyCompiler.State.Resilience.StateFailMode.Closed,
    };

    /// <summary><c>--state-timeout MILLISECONDS</c>.</summary>
    public Option<int> StateTimeout { get; } = new("--state-timeout")
    {
        Description = "The most a counter store call may add to a tool call, in milliseconds (default 250).",
        DefaultValueFactory = _ => 250,
    };

    /// <summary><c>--admin ADDRESS:PORT</c>: the stdio gateway's admin listener (docs/approvals.md).</summary>
    public Option<string?> Admin { get; } = new("--admin")
    {
        Description = "Serve /healthz, /metrics and the approvals API (/approvals) on this address (e.g. 127.0.0.1:9090).",
    };

    /// <summary><c>--admin-token-file FILE</c>: the token the approvals API requires (docs/approvals.md).</summary>
    public Option<string?> AdminTokenFile { get; } = new("--admin-token-file")
    {
        Description = $"The admin listener's /approvals routes require 'Authorization: Bearer TOKEN' with the token in FILE (default: ${AdminToken.EnvironmentVariable}); without one they refuse.",
    };

    /// <summary><c>-- COMMAND [ARGS...]</c>.</summary>
    public Argument<string[]> Command { get; } = new("command")
    {
        Description = "The upstream MCP server's command line (after --); omitted with --upstream.",
        Arity = ArgumentArity.ZeroOrMore,
    };

    /// <summary><c>--upstream URL</c>: a Streamable HTTP upstream instead of a command (docs/http.md).</summary>
    public Option<Uri?> Upstream { get; } = new("--upstream")
    {
        Description = "Proxy to this Streamable HTTP endpoint (http:// or https://) instead of starting a command.",
        CustomParser = result => Uri.TryCreate(result.Tokens[0].Value, UriKind.Absolute, out Uri? uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : FailUri(result, $"--upstream: '{result.Tokens[0].Value}' is not an http(s) URL."),
    };

    /// <summary><c>--upstream-header 'NAME: VALUE'</c> (repeatable, with <c>--upstream</c>).</summary>
    public Option<string[]> UpstreamHeaders { get; } = new("--upstream-header")
    {
        Description = "A header sent with every request to --upstream, 'NAME: VALUE' (e.g. the gateway's credentials). Repeatable.",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Adds every option and the command argument to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Add(Grant);
        command.Add(Audit);
        command.Add(AuditFailOpen);
        command.Add(AuditArguments);
        command.Add(MaxMessageBytes);
        command.Add(LogLevel);
        command.Add(ShutdownGrace);
        command.Add(State);
        command.Add(StatePrefix);
        command.Add(StateFailMode);
        command.Add(StateTimeout);
        command.Add(Upstream);
        command.Add(UpstreamHeaders);
        command.Add(Admin);
        command.Add(AdminTokenFile);
        command.Add(Command);
        Admin.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } admin && !System.Net.IPEndPoint.TryParse(admin, out _))
            {
                result.AddError("--admin: expected ADDRESS:PORT, e.g. 127.0.0.1:9090.");
            }
        });
        command.Validators.Add(result =>
        {
            bool hasUpstream = result.GetResult(Upstream) is not null; // not GetValue: that throws when the URL is invalid
            bool hasCommand = (result.GetValue(Command) ?? []).Length > 0;
            if (hasUpstream == hasCommand)
            {
                result.AddError(hasUpstream
                    ? "Give either --upstream URL or -- COMMAND [ARGS...], not both."
                    : "Missing the upstream: -- COMMAND [ARGS...] or --upstream URL.");
            }
        });
        UpstreamHeaders.Validators.Add(result =>
        {
            foreach (string header in result.GetValueOrDefault<string[]>() ?? [])
            {
                if (!HttpCommandOptions.TryParseHeader(header, out _))
                {
                    result.AddError($"--upstream-header: '{header}' is not 'NAME: VALUE'.");
                }
            }
        });
        State.Validators.Add(result =>
        {
            if (!StateSpecification.TryParse(result.GetValueOrDefault<string>(), out _, out string? error))
            {
                result.AddError(error);
            }
        });
        StateTimeout.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > 60_000)
            {
                result.AddError("--state-timeout must be between 1 and 60000 milliseconds.");
            }
        });
        MaxMessageBytes.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<long>() < 64)
            {
                result.AddError("--max-message-bytes must be at least 64.");
            }
        });
        ShutdownGrace.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() is < 0 or > 3600)
            {
                result.AddError("--shutdown-grace must be between 0 and 3600 seconds.");
            }
        });
    }

    /// <summary>Runs the stdio gateway on this process's stdin/stdout with the parsed options.</summary>
    /// <param name="parseResult">The parsed command line.</param>
    /// <param name="evaluatorFactory">Creates the evaluator (compiled or interpreted).</param>
    /// <param name="policy">What it enforces (for the audit log and the start message).</param>
    /// <param name="gatewayName">The gateway's name.</param>
    /// <param name="cancellationToken">Stops the gateway.</param>
    public async Task<int> RunAsync(
        ParseResult parseResult,
        Func<PolicyEvaluatorOptions, IPolicyEvaluator> evaluatorFactory,
        PolicyInfo policy,
        string gatewayName,
        CancellationToken cancellationToken)
    {
        string[] commandLine = parseResult.GetValue(Command) ?? [];
        using var logs = new StderrLoggerProvider(parseResult.GetValue(LogLevel), gatewayName);
        ILogger logger = logs.CreateLogger(gatewayName);
        if (!TryLoadAdminToken(parseResult, gatewayName, out AdminToken? adminToken))
        {
            return 2;
        }

        StateSpecification.TryParse(parseResult.GetValue(State), out StateSpecification? state, out _);
        state ??= StateSpecification.Default;
        ICounterStore counters = state.Open(
            parseResult.GetValue(StatePrefix) ?? string.Empty,
            parseResult.GetValue(StateFailMode),
            TimeSpan.FromMilliseconds(parseResult.GetValue(StateTimeout)),
            logs.CreateLogger(gatewayName + ".state"));
        using var ownedCounters = counters as IDisposable;
        IPolicyEvaluator evaluator = evaluatorFactory(new PolicyEvaluatorOptions { Counters = counters });
        string? auditPath = parseResult.GetValue(Audit);
        AuditLog? audit = auditPath is null ? null : AuditLog.Open(auditPath, new AuditLogOptions
        {
            GatewayName = gatewayName,
            PolicySha256 = policy.Sha256,
            IncludeArguments = parseResult.GetValue(AuditArguments),
        }, logger);

        // Held calls wait in this process's broker; a person answers through the client (elicitation) or --admin.
        var metrics = new GatewayMetrics();
        using var approvals = new ApprovalBroker(TimeProvider.System, audit, metrics, logger);
        var options = new GatewayOptions
        {
            Grant = parseResult.GetValue(Grant) ?? "default",
            MaxMessageBytes = parseResult.GetValue(MaxMessageBytes),
            AuditFailOpen = parseResult.GetValue(AuditFailOpen),
            ShutdownGrace = TimeSpan.FromSeconds(parseResult.GetValue(ShutdownGrace)),
            Approvals = approvals,
            Metrics = metrics,
        };

        GatewayLog.Started(logger, policy.Name, policy.Sha256, policy.Mode.ToString(), options.Grant);
        StdioAdminServer? admin = null;
        try
        {
            if (parseResult.GetValue(Admin) is { } adminAddress)
            {
                try
                {
                    admin = await StdioAdminServer.StartAsync(System.Net.IPEndPoint.Parse(adminAddress), metrics, approvals, adminToken, logger, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    await parseResult.InvocationConfiguration.Error.WriteLineAsync($"{gatewayName}: error: cannot listen on --admin {adminAddress}: {e.Message}").ConfigureAwait(false);
                    return 1;
                }
            }

            if (parseResult.GetValue(Upstream) is { } upstream)
            {
                var headers = new List<KeyValuePair<string, string>>();
                foreach (string header in parseResult.GetValue(UpstreamHeaders) ?? [])
                {
                    HttpCommandOptions.TryParseHeader(header, out KeyValuePair<string, string> parsed);
                    headers.Add(parsed);
                }

                GatewayRunResult result = await StdioToHttpGateway.RunAsync(
                    PipeReader.Create(Console.OpenStandardInput()),
                    PipeWriter.Create(Console.OpenStandardOutput()),
                    upstream,
                    headers,
                    evaluator,
                    options,
                    audit,
                    logger,
                    cancellationToken: cancellationToken).ConfigureAwait(false);
                return result.Stop == GatewayStop.ClientClosed ? 0 : 1;
            }

            return await StdioServerProcess.RunAsync(
                commandLine[0],
                commandLine[1..],
                evaluator,
                options,
                audit,
                logger,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (admin is not null)
            {
                await admin.DisposeAsync().ConfigureAwait(false);
            }

            approvals.Dispose();
            if (audit is not null)
            {
                // Drains and flushes: a graceful stop (end of input, or a forwarded signal) loses no record.
                await audit.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Reads <c>--admin-token-file</c> (or the environment variable); false, with the error printed, when it is unusable.</summary>
    internal bool TryLoadAdminToken(ParseResult parseResult, string gatewayName, out AdminToken? token)
    {
        string? file = parseResult.GetValue(AdminTokenFile);
        try
        {
            token = AdminToken.Load(file);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            parseResult.InvocationConfiguration.Error.WriteLine($"{gatewayName}: error: --admin-token-file {file ?? "$" + AdminToken.EnvironmentVariable}: {e.Message}");
            token = null;
            return false;
        }
    }

    private static Uri? FailUri(System.CommandLine.Parsing.ArgumentResult result, string message)
    {
        result.AddError(message);
        return null;
    }
}
