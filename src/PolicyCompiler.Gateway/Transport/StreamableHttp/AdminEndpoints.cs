using System.Text;
using Microsoft.AspNetCore.Http;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// The admin listener (<c>--admin</c>, its own port, loopback by default): <c>/healthz</c> (the process
/// serves), <c>/readyz</c> (the upstream answers an MCP initialize: <see cref="UpstreamProbe"/>), <c>/metrics</c> (Prometheus text format).
/// Separate from the MCP port so that it needs no grant and is never exposed with it. The
/// <c>/approvals</c> routes (docs/approvals.md) need the admin token. The stdio gateway's admin listener
/// serves the same routes without a readiness probe: there <c>/readyz</c> is 404 (its one upstream is its own child).
/// </summary>
internal sealed class AdminEndpoints(GatewayMetrics metrics, UpstreamProbe? readiness, ApprovalAdminEndpoints? approvals = null)
{
    public async Task HandleAsync(HttpContext context)
    {
        if (approvals is not null && ApprovalAdminEndpoints.Matches(context.Request.Path))
        {
            await approvals.HandleAsync(context).ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsGet(context.Request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }

        switch (context.Request.Path.Value)
        {
            case "/healthz":
                context.Response.ContentType = "text/plain";
                await context.Response.WriteAsync("ok\n", context.RequestAborted).ConfigureAwait(false);
                return;
            case "/readyz" when readiness is not null:
                ProbeResult probe = await readiness.CheckAsync().WaitAsync(context.RequestAborted).ConfigureAwait(false);
                context.Response.StatusCode = probe.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
                context.Response.ContentType = "text/plain";
                await context.Response.WriteAsync((probe.Ready ? "ready: " : "not ready: ") + probe.Detail + "\n", context.RequestAborted).ConfigureAwait(false);
                return;
            case "/metrics":
                var text = new StringWriter(new StringBuilder(4096), System.Globalization.CultureInfo.InvariantCulture);
                metrics.WritePrometheus(text);
                context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                await context.Response.WriteAsync(text.ToString(), context.RequestAborted).ConfigureAwait(false);
                return;
            default:
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
        }
    }
}
