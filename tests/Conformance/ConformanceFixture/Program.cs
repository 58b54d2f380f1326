// The conformance fixture: one MCP server, two transports.
//   ConformanceFixture [--listen 127.0.0.1:PORT]   Streamable HTTP on /mcp (default 127.0.0.1:3001)
//   ConformanceFixture --stdio                     newline-delimited JSON-RPC on stdin/stdout
// Both hosts register the same handlers (ConformanceServer.Configure), so a scenario that differs
// between "direct" and "behind the gateway" can only differ because of the gateway.
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Conformance.Fixture;

if (args.Contains("--stdio"))
{
    // The empty builder reads no appsettings.json, so it watches no files: a gateway starts one fixture per
    // session, and each file watcher takes one of the user's inotify instances (128 by default).
    var stdio = Host.CreateEmptyApplicationBuilder(settings: null);
    // stdout carries only MCP messages: every log goes to stderr.
    stdio.Logging.ClearProviders();
    stdio.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    stdio.Logging.SetMinimumLevel(LogLevel.Warning);
    ConformanceServer.Configure(stdio.Services.AddMcpServer(ConformanceServer.ConfigureOptions)).WithStdioServerTransport();
    await stdio.Build().RunAsync();
    return 0;
}

string listen = "127.0.0.1:3001";
int listenIndex = Array.IndexOf(args, "--listen");
if (listenIndex >= 0 && listenIndex + 1 < args.Length)
{
    listen = args[listenIndex + 1];
}

if (!IPEndPoint.TryParse(listen, out IPEndPoint? endpoint))
{
    Console.Error.WriteLine($"--listen: not ADDRESS:PORT: {listen}");
    return 2;
}

var web = WebApplication.CreateSlimBuilder();
web.Logging.ClearProviders();
web.Logging.AddConsole();
web.Logging.SetMinimumLevel(LogLevel.Warning);
web.WebHost.UseKestrel(k => k.Listen(endpoint));
// An in-memory event store makes POST streams resumable (SEP-1699): test_reconnection ends its
// stream mid-call and the client collects the result with GET + Last-Event-ID.
web.Services.AddDistributedMemoryCache();
ConformanceServer.Configure(web.Services.AddMcpServer(ConformanceServer.ConfigureOptions))
    .WithHttpTransport(o => o.SessionMode = ModelContextProtocol.AspNetCore.HttpServerSessionMode.Stateful)
    .WithDistributedCacheEventStreamStore();
WebApplication app = web.Build();

// DNS-rebinding protection (MCP basic/security_best_practices, "Local MCP server compromise"): a
// localhost server answers only requests addressed to a loopback name, from a loopback origin.
app.Use(async (context, next) =>
{
    if (!LoopbackOnly.IsAllowed(context.Request))
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        await context.Response.WriteAsync("Host or Origin is not a loopback name");
        return;
    }

    await next(context);
});
app.MapMcp("/mcp");
await app.RunAsync();
return 0;
