using Microsoft.AspNetCore.Http;

namespace PolicyCompiler.Conformance.Fixture;

/// <summary>The fixture's DNS-rebinding check: Host and (when present) Origin must name a loopback host.</summary>
internal static class LoopbackOnly
{
    public static bool IsAllowed(HttpRequest request)
    {
        if (!IsLoopbackName(request.Host.Host))
        {
            return false;
        }

        string origin = request.Headers.Origin.ToString();
        return origin.Length == 0
            || (Uri.TryCreate(origin, UriKind.Absolute, out Uri? uri) && IsLoopbackName(uri.Host));
    }

    private static bool IsLoopbackName(string host) =>
        host is "localhost" or "127.0.0.1" or "[::1]" or "::1";
}
