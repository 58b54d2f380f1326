using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Transport.StreamableHttp;

namespace PolicyCompiler.Gateway.Hosting;

/// <summary>
/// The admin listener of the stdio gateway (<c>GATEWAY stdio --admin ADDRESS:PORT</c>): the HTTP gateway's
/// <see cref="AdminEndpoints"/> without <c>/readyz</c> — <c>/healthz</c>, <c>/metrics</c> and the approvals API (docs/approvals.md), so a headless agent's held calls can be
/// answered out of band. Kestrel's slim builder, as the HTTP gateway's (Native AOT clean); its logs go
/// to the gateway's logger (stderr): stdout carries MCP messages only.
/// </summary>
public sealed class StdioAdminServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private StdioAdminServer(WebApplication app, IPEndPoint endPoint)
    {
        _app = app;
        EndPoint = endPoint;
    }

    /// <summary>The bound address (the real port when asked for port 0).</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Binds <paramref name="listen"/> and starts serving.</summary>
    /// <param name="listen">Where to listen (loopback unless told otherwise).</param>
    /// <param name="metrics">The gateway's counters.</param>
    /// <param name="approvals">The held calls.</param>
    /// <param name="token">The admin token; null: the approvals routes refuse (403) and say why.</param>
    /// <param name="logger">Diagnostics (stderr).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<StdioAdminServer> StartAsync(IPEndPoint listen, GatewayMetrics metrics, ApprovalBroker approvals, AdminToken? token, ILogger logger, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(listen);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(approvals);
        ArgumentNullException.ThrowIfNull(logger);
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new ForwardingLoggerProvider(logger));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(listen);
        });
        WebApplication app = builder.Build();
        var routes = new AdminEndpoints(metrics, readiness: null, new ApprovalAdminEndpoints(approvals, token));
        app.Run(routes.HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        int port = listen.Port;
        foreach (string address in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses)
        {
            port = new Uri(address).Port;
        }

        return new StdioAdminServer(app, new IPEndPoint(listen.Address, port));
    }

    /// <summary>Stops listening.</summary>
    public async ValueTask DisposeAsync()
    {
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
        {
            await _app.StopAsync(timeout.Token).ConfigureAwait(false);
        }

        await _app.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class ForwardingLoggerProvider(ILogger target) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => target;

        public void Dispose()
        {
        }
    }
}
