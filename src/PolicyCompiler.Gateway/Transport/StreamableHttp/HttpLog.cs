using Microsoft.Extensions.Logging;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>Log messages of the Streamable HTTP transport (source-generated; stderr, like every gateway log).</summary>
internal static partial class HttpLog
{
    [LoggerMessage(100, LogLevel.Information, "Streamable HTTP gateway listening on {Endpoint}{Path}, upstream {Upstream}")]
    public static partial void Listening(ILogger logger, string endpoint, string path, string upstream);

    [LoggerMessage(101, LogLevel.Warning, "Refused a request from origin '{Origin}' for host '{Host}' (not allowed; DNS-rebinding protection)")]
    public static partial void OriginRefused(ILogger logger, string origin, string host);

    [LoggerMessage(102, LogLevel.Warning, "Refused a request without a valid bearer token ({Reason})")]
    public static partial void Unauthorized(ILogger logger, string reason);

    [LoggerMessage(103, LogLevel.Error, "The upstream MCP server cannot be reached: {Message}")]
    public static partial void UpstreamUnreachable(ILogger logger, string message);

    [LoggerMessage(104, LogLevel.Error, "The upstream MCP server broke off its response: {Message}")]
    public static partial void UpstreamStreamFailed(ILogger logger, string message);

    [LoggerMessage(105, LogLevel.Error, "The upstream MCP server refused the gateway's credentials (HTTP {Status}); check --upstream-header")]
    public static partial void UpstreamRefusedCredentials(ILogger logger, int status);

    [LoggerMessage(106, LogLevel.Information, "Session {Session} ended ({Reason})")]
    public static partial void SessionEnded(ILogger logger, string session, string reason);

    [LoggerMessage(107, LogLevel.Information, "Admin listener on {Endpoint}")]
    public static partial void AdminListening(ILogger logger, string endpoint);
}
