using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// The Streamable HTTP gateway (docs/http.md): Kestrel (<see cref="WebApplication.CreateEmptyBuilder"/>,
/// Native AOT clean) serving the MCP endpoint, and the optional admin listener on its own port, in
/// one server; <see cref="HttpClient"/> on a <see cref="SocketsHttpHandler"/> for the upstream.
/// <see cref="StartAsync"/> binds and returns; tests run it in-process on port 0.
/// </summary>
public sealed class HttpGateway : IAsyncDisposable
{
    private const string AdminConnectionKey = "policycompiler.admin";

    private readonly HttpGatewayOptions _options;
    private readonly WebApplication _app;
    private readonly HttpMessageInvoker _upstream;
    private readonly SessionTable _sessions = new();
    private readonly ILogger _logger;
    private readonly ITimer _sweeper;
    private readonly Uri _upstreamUri;

    private HttpGateway(HttpGatewayOptions options, IPolicyEvaluator evaluator, AuditLog? audit, ILogger logger, HttpMessageHandler? upstreamHandler, TimeProvider time)
    {
        _options = options;
        _logger = logger;
        Metrics = new GatewayMetrics();
        Metrics.ObserveActiveSessions(() => _sessions.Count);
        _sessions.Removed += session => HttpLog.SessionEnded(logger, session.Id, "removed");
        _upstreamUri = options.Upstream ?? throw new ArgumentException("An upstream URL is required.", nameof(options));
        _upstream = new HttpMessageInvoker(upstreamHandler ?? new SocketsHttpHandler
        {
            // A proxy forwards what it is given: no redirects, no cookies, no decompression.
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
        }, disposeHandler: true);

        // One broker for every session: the admin API lists and answers the held calls of all of them.
        Approvals = new ApprovalBroker(time, audit, Metrics, logger);
        // A session that ends (DELETE, idle) withdraws its held calls and forgets its session-scoped approvals.
        _sessions.Removed += session => Approvals.EndSession(session.Id);
        var enforcer = new ToolCallEnforcer(evaluator, audit, options.AuditFailOpen, logger, Metrics, Approvals);
        var proxy = new StreamableHttpProxy(options, enforcer, _upstream, _upstreamUri, _sessions, Metrics, logger, time, upstreamHandler as ChildProcessHandler);

        // The empty builder, not the slim one: no appsettings.json read from the working directory (a stray file
        // there could add Kestrel endpoints), no environment-variable configuration, and no file watcher (a thread,
        // and inotify watches on the whole working-directory tree) to reload files the gateway never uses.
        WebApplicationBuilder builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseKestrelCore();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ForwardingLoggerProvider(logger));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // Kestrel's socket transport hands every received request, and every response to be sent, to the
        // thread pool by default: two thread hops per exchange on top of the socket engine's own. Inline, the
        // request runs on the thread that received the bytes and the response is sent from the thread that
        // wrote it (docs/performance.md, "HTTP"). Not the epoll thread: the socket engine still completes
        // receives on pool threads (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS stays off), so a request that
        // blocks (a SQLite counter store) holds a pool thread as before, and never stalls other connections.
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Bodies are bounded by the gateway itself (413 with a JSON-RPC error); Kestrel's own limit is a backstop.
            kestrel.Limits.MaxRequestBodySize = options.MaxMessageBytes + 1;
            kestrel.Listen(options.Listen);
            if (options.Admin is { } admin)
            {
                kestrel.Listen(admin, listen => listen.Use(next => connection =>
                {
                    connection.Items[AdminConnectionKey] = true;
                    return next(connection);
                }));
            }
        });
        _app = builder.Build();
        var readiness = new UpstreamProbe(_upstream, _upstreamUri, options.UpstreamHeaders, upstreamHandler is ChildProcessHandler children ? () => children.Children : null, time);
        var admin = new AdminEndpoints(Metrics, readiness, new ApprovalAdminEndpoints(Approvals, options.AdminToken));
        _app.Run(context =>
        {
            if (context.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(AdminConnectionKey) == true)
            {
                return admin.HandleAsync(context);
            }

            return proxy.HandleAsync(context);
        });

        TimeSpan period = TimeSpan.FromMilliseconds(Math.Clamp(options.SessionIdleTimeout.TotalMilliseconds / 4, 100, 30_000));
        _sweeper = time.CreateTimer(_ => _sessions.Sweep(options.SessionIdleTimeout), null, period, period);
    }

    /// <summary>The gateway's counters (also served on the admin listener's <c>/metrics</c>).</summary>
    public GatewayMetrics Metrics { get; }

    /// <summary>The calls held for approval (docs/approvals.md), answered through the admin listener's <c>/approvals</c>.</summary>
    public ApprovalBroker Approvals { get; }

    /// <summary>How many MCP sessions are open.</summary>
    public int ActiveSessions => _sessions.Count;

    /// <summary>The MCP endpoint's bound address (the real port when <see cref="HttpGatewayOptions.Listen"/> had port 0).</summary>
    public IPEndPoint ListenEndPoint { get; private set; } = new(IPAddress.Loopback, 0);

    /// <summary>The admin listener's bound address, or null.</summary>
    public IPEndPoint? AdminEndPoint { get; private set; }

    /// <summary>The MCP endpoint's URL.</summary>
    public Uri Url => new($"http://{ListenEndPoint}{_options.Path}");

    /// <summary>Binds the listeners and starts serving.</summary>
    /// <param name="options">Listen address, upstream, grants, limits.</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="audit">The audit log, or null.</param>
    /// <param name="logger">Diagnostics.</param>
    /// <param name="upstreamHandler">Sends upstream requests (tests; default: a <see cref="SocketsHttpHandler"/>).</param>
    /// <param name="time">The clock for grant expiry and idle sessions.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<HttpGateway> StartAsync(
        HttpGatewayOptions options,
        IPolicyEvaluator evaluator,
        AuditLog? audit,
        ILogger logger,
        HttpMessageHandler? upstreamHandler = null,
        TimeProvider? time = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(evaluator);
        ArgumentNullException.ThrowIfNull(logger);
        var gateway = new HttpGateway(options, evaluator, audit, logger, upstreamHandler, time ?? TimeProvider.System);
        await gateway._app.StartAsync(cancellationToken).ConfigureAwait(false);
        gateway.ResolveAddresses();
        HttpLog.Listening(logger, gateway.ListenEndPoint.ToString(), options.Path, gateway._upstreamUri.ToString());
        if (gateway.AdminEndPoint is not null)
        {
            HttpLog.AdminListening(logger, gateway.AdminEndPoint.ToString());
        }

        return gateway;
    }

    /// <summary>Stops listening, forgets every session, and releases the upstream connections.</summary>
    public async ValueTask DisposeAsync()
    {
        await _sweeper.DisposeAsync().ConfigureAwait(false);
        Approvals.Dispose(); // held POSTs are answered (withdrawn) before the listener stops
        using (var timeout = new CancellationTokenSource(_options.ShutdownGrace))
        {
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }

        _sessions.Clear();
        await _app.DisposeAsync().ConfigureAwait(false);
        _upstream.Dispose();
    }

    private void ResolveAddresses()
    {
        // Kestrel reports its addresses in the order the endpoints were configured: MCP first, admin second.
        int index = 0;
        foreach (string address in _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses)
        {
            int port = new Uri(address).Port;
            if (index++ == 0)
            {
                ListenEndPoint = new IPEndPoint(_options.Listen.Address, port);
            }
            else if (_options.Admin is not null)
            {
                AdminEndPoint = new IPEndPoint(_options.Admin.Address, port);
            }
        }
    }

    /// <summary>Kestrel's own warnings and errors go to the gateway's logger (stderr).</summary>
    private sealed class ForwardingLoggerProvider(ILogger target) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => target;

        public void Dispose()
        {
        }
    }
}
