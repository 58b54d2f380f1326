using System.Text;
using Microsoft.AspNetCore.Http;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement.Approvals;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// The admin listener (<c>--admin</c>, its own port, loopback by default): <c>/healthz</c> (the process
/// serves), <c>/readyz</c> (the upstream answers HTTP at all), <c>/metrics</c> (Prometheus text format).
/// Separate from the MCP port so that it needs no grant and is never exposed with it. The
/// <c>/approvals</c> routes (docs/approvals.md) need the admin token.
/// </summary>
internal sealed class AdminEndpoints(GatewayMetrics metrics, HttpMessageInvoker upstream, Uri upstreamUri, IReadOnlyList<KeyValuePair<string, string>> upstreamHeaders, ApprovalAdminEndpoints? approvals = null)
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
            case "/readyz":
                bool ready = await UpstreamAnswersAsync(context.RequestAborted).ConfigureAwait(false);
                context.Response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
                context.Response.ContentType = "text/plain";
                await context.Response.WriteAsync(ready ? "ready\n" : "upstream unreachable\n", context.RequestAborted).ConfigureAwait(false);
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

    /// <summary>Any HTTP answer from the upstream endpoint (even 4xx) means it is reachable.</summary>
    private async Task<bool> UpstreamAnswersAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        using var probe = new HttpRequestMessage(HttpMethod.Options, upstreamUri);
        foreach (KeyValuePair<string, string> header in upstreamHeaders)
        {
            probe.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        try
        {
            using HttpResponseMessage response = await upstream.SendAsync(probe, timeout.Token).ConfigureAwait(false);
            return (int)response.StatusCode < 500;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            return false;
        }
    }
}
