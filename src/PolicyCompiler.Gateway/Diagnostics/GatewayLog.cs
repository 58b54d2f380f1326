using Microsoft.Extensions.Logging;

namespace PolicyCompiler.Gateway.Diagnostics;

/// <summary>
/// Every log message of the gateway, source-generated (no boxing, no formatting unless enabled).
/// Logs go to stderr only: stdout carries MCP messages and nothing else (basic/transports#stdio).
/// Message contents (tool arguments) never appear here; tool names only at debug level.
/// </summary>
internal static partial class GatewayLog
{
    [LoggerMessage(1, LogLevel.Information, "Gateway started: policy {Policy} ({Sha256}), mode {Mode}, grant {Grant}")]
    public static partial void Started(ILogger logger, string policy, string sha256, string mode, string grant);

    [LoggerMessage(2, LogLevel.Debug, "tools/call {Tool}: {Decision} by {Rule}")]
    public static partial void DecisionMade(ILogger logger, string tool, string decision, string rule);

    [LoggerMessage(3, LogLevel.Error, "The policy evaluator failed; the call was denied (fail closed)")]
    public static partial void EvaluatorFailed(ILogger logger, Exception exception);

    [LoggerMessage(4, LogLevel.Warning, "Refused a message from the client: {Detail}")]
    public static partial void ClientMessageRefused(ILogger logger, string detail);

    [LoggerMessage(5, LogLevel.Warning, "A message from the client exceeded {Limit} bytes and was discarded")]
    public static partial void ClientMessageOversized(ILogger logger, long limit);

    [LoggerMessage(6, LogLevel.Warning, "A message from the upstream server exceeded {Limit} bytes and was discarded")]
    public static partial void UpstreamMessageOversized(ILogger logger, long limit);

    [LoggerMessage(7, LogLevel.Error, "The upstream server closed its output with {Count} request(s) unanswered; each was answered with error -32001")]
    public static partial void UpstreamClosedWithPending(ILogger logger, int count);

    [LoggerMessage(8, LogLevel.Error, "Cannot open the audit log {Path}; tool calls will be refused unless --audit-fail-open is given")]
    public static partial void AuditOpenFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(9, LogLevel.Error, "Cannot write the audit log; tool calls will be refused unless --audit-fail-open is given")]
    public static partial void AuditWriteFailed(ILogger logger, Exception exception);

    [LoggerMessage(10, LogLevel.Warning, "The audit log is unavailable; a tools/call was refused (fail closed)")]
    public static partial void AuditUnavailableRefused(ILogger logger);

    [LoggerMessage(11, LogLevel.Information, "Forwarding signal {Signal} to the upstream server (pid {Pid})")]
    public static partial void ForwardingSignal(ILogger logger, string signal, int pid);

    [LoggerMessage(12, LogLevel.Warning, "The upstream server did not exit within {GraceSeconds} s; killing its process tree")]
    public static partial void KillingUpstream(ILogger logger, double graceSeconds);

    [LoggerMessage(13, LogLevel.Information, "The upstream server exited with status {ExitCode}")]
    public static partial void UpstreamExited(ILogger logger, int exitCode);

    [LoggerMessage(14, LogLevel.Warning, "Dropped an invalid notification from the client: {Detail}")]
    public static partial void ClientNotificationDropped(ILogger logger, string detail);

    [LoggerMessage(15, LogLevel.Warning, "Cannot write to the upstream server: {Message}")]
    public static partial void UpstreamWriteFailed(ILogger logger, string message);

    [LoggerMessage(16, LogLevel.Information, "Policy reloaded from {Path}: {Policy} ({Sha256})")]
    public static partial void PolicyReloaded(ILogger logger, string path, string policy, string sha256);

    [LoggerMessage(17, LogLevel.Error, "Policy reload from {Path} failed; keeping the previous policy: {Diagnostics}")]
    public static partial void PolicyReloadFailed(ILogger logger, string path, string diagnostics);

    [LoggerMessage(18, LogLevel.Warning, "A message from the upstream server is not valid JSON-RPC ({Detail}); forwarded as is")]
    public static partial void UpstreamMessageUnreadable(ILogger logger, string detail);
}
