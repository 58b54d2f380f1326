using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>
/// An upstream MCP server on the official C# SDK's ASP.NET Core transport (ModelContextProtocol.AspNetCore),
/// with EKS-like tool names. It records every tools/call it receives (and the headers that came with it),
/// so tests can prove a denied call never arrived and the client's token never reached it.
/// </summary>
internal sealed class SdkHttpServer : IAsyncDisposable
{
    private static readonly string[] ToolNames =
        ["list_k8s_resources", "get_pod_logs", "add_inline_policy", "get_policies_for_role", "CreateCodeConnection", "apply_yaml", "slow_progress", "break_stream"];

    private readonly WebApplication _app;

    private SdkHttpServer(WebApplication app) => _app = app;

    /// <summary>tools/call names in arrival order.</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>Authorization headers seen on any request (must only ever be the gateway's own).</summary>
    public ConcurrentQueue<string> AuthorizationHeaders { get; } = new();

    /// <summary>How many DELETE requests arrived.</summary>
    public int Deletes => _deletes;

    private int _deletes;

    private int _gets;

    /// <summary>How many GET requests (streams for server-initiated messages) arrived.</summary>
    public int Gets => _gets;

    public Uri Url { get; private set; } = null!;

    /// <summary>Starts on <paramref name="port"/> (0: any free port; a given one lets a test restart "the same" server).</summary>
    public static async Task<SdkHttpServer> StartAsync(int port = 0)
    {
        SdkHttpServer? self = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port));
        var schema = JsonSerializer.SerializeToElement(new JsonObject { ["type"] = "object" });
        builder.Services
            .AddMcpServer(o => o.ServerInfo = new Implementation { Name = "sdk-http-upstream", Version = "1.0.0" })
            .WithHttpTransport(o => o.Stateless = false) // sessions: the gateway binds them to grants and counts per session
            .WithListToolsHandler((_, _) => ValueTask.FromResult(new ListToolsResult
            {
                Tools = ToolNames.Select(n => new Tool { Name = n, Description = n, InputSchema = schema }).ToList(),
            }))
            .WithCallToolHandler(async (request, cancellationToken) =>
            {
                string name = request.Params?.Name ?? "";
                self!.Calls.Enqueue(name);
                if (name == "slow_progress" && request.Params?.ProgressToken is { } token)
                {
                    for (int i = 1; i <= 3; i++)
                    {
                        await request.Server.NotifyProgressAsync(token, new ProgressNotificationValue { Progress = i, Total = 3, Message = $"step {i}" }, cancellationToken: cancellationToken);
                        await Task.Delay(20, cancellationToken);
                    }
                }

                if (name == "break_stream")
                {
                    // Kill the connection in the middle of the response stream.
                    request.Services!.GetRequiredService<IHttpContextAccessor>().HttpContext!.Abort();
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }

                return new CallToolResult { Content = [new TextContentBlock { Text = $"{name} ok" }] };
            });
        builder.Services.AddHttpContextAccessor();
        WebApplication app = builder.Build();
        self = new SdkHttpServer(app);
        app.Use(async (context, next) =>
        {
            if (context.Request.Headers.Authorization.Count > 0)
            {
                self.AuthorizationHeaders.Enqueue(context.Request.Headers.Authorization.ToString());
            }

            if (HttpMethods.IsGet(context.Request.Method))
            {
                Interlocked.Increment(ref self._gets);
            }

            if (HttpMethods.IsDelete(context.Request.Method))
            {
                Interlocked.Increment(ref self._deletes);
            }

            await next(context);
        });
        app.MapMcp("/mcp");
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self.Url = new Uri(new Uri(address), "/mcp");
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
