using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Transport.Stdio;

/// <summary>Why a gateway session ended.</summary>
public enum GatewayStop
{
    /// <summary>The client closed its input first (the normal end of a stdio session).</summary>
    ClientClosed,
    /// <summary>The upstream closed its output while the client was still connected.</summary>
    UpstreamClosed,
    /// <summary>The session was cancelled.</summary>
    Cancelled,
}

/// <summary>How a gateway session ended.</summary>
/// <param name="Stop">Which side ended it.</param>
/// <param name="UnansweredRequests">Client requests the upstream never answered (each got error -32001).</param>
public readonly record struct GatewayRunResult(GatewayStop Stop, int UnansweredRequests);

/// <summary>
/// The stdio gateway (MCP basic/transports#stdio): newline-delimited JSON-RPC between a client and an
/// upstream server, with the policy enforced in between. <see cref="RunAsync"/> drives one session
/// over any four pipes (tests run it in memory); <see cref="StdioServerProcess"/> runs it against a
/// child process.
/// </summary>
public static class StdioGateway
{
    /// <summary>
    /// Proxies one session. The client's end of input closes the upstream's input, and the session ends
    /// when the upstream closes its output too (<see cref="GatewayStop.ClientClosed"/>). The upstream's end
    /// of output while the client is still connected answers every pending request with error -32001,
    /// completes <paramref name="clientOut"/>, cancels the pending read of <paramref name="clientIn"/> and
    /// ends the session at once (<see cref="GatewayStop.UpstreamClosed"/>): the client loop completes
    /// <paramref name="clientIn"/> and <paramref name="upstreamOut"/> when its read returns.
    /// </summary>
    /// <param name="clientIn">Messages from the client.</param>
    /// <param name="clientOut">Messages to the client.</param>
    /// <param name="upstreamIn">Messages from the upstream server.</param>
    /// <param name="upstreamOut">Messages to the upstream server.</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="options">Grant, session, limits.</param>
    /// <param name="audit">The audit log, or null for none.</param>
    /// <param name="logger">Where diagnostics go (stderr in the command line).</param>
    /// <param name="cancellationToken">Stops the session abruptly.</param>
    public static Task<GatewayRunResult> RunAsync(
        PipeReader clientIn,
        PipeWriter clientOut,
        PipeReader upstreamIn,
        PipeWriter upstreamOut,
        IPolicyEvaluator evaluator,
        GatewayOptions options,
        AuditLog? audit = null,
        ILogger? logger = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(evaluator);
        ArgumentNullException.ThrowIfNull(options);
        var proxy = new PolicyProxy(clientOut, evaluator, options, audit, logger ?? NullLogger.Instance);
        return RunSessionAsync(proxy, clientIn, upstreamIn, upstreamOut, cancellationToken);
    }

    /// <summary>
    /// Runs both loops of <paramref name="proxy"/> (the process host watches <see cref="PolicyProxy.ClientClosed"/> meanwhile).
    /// With <paramref name="dedicatedThreads"/>, each loop starts on a thread of its own: for pipes whose reads and
    /// flushes complete synchronously (<see cref="FileDescriptorPipeReader"/>, <see cref="FileDescriptorPipeWriter"/>)
    /// the loop then never leaves that thread, which blocks in the read and is the only one woken per batch of input.
    /// (A loop that does wait — a write lock held by the other side, an approval — resumes on the thread pool and
    /// stays correct, only slower.)
    /// </summary>
    internal static async Task<GatewayRunResult> RunSessionAsync(PolicyProxy proxy, PipeReader clientIn, PipeReader upstreamIn, PipeWriter upstreamOut, CancellationToken cancellationToken, bool dedicatedThreads = false)
    {
        Task clientToUpstream = dedicatedThreads
            ? StartOnDedicatedThread(() => proxy.RunClientToUpstreamAsync(clientIn, upstreamOut, cancellationToken))
            : proxy.RunClientToUpstreamAsync(clientIn, upstreamOut, cancellationToken);
        Task upstreamToClient = dedicatedThreads
            ? StartOnDedicatedThread(() => proxy.RunUpstreamToClientAsync(upstreamIn, cancellationToken))
            : proxy.RunUpstreamToClientAsync(upstreamIn, cancellationToken);
        Task first = await Task.WhenAny(clientToUpstream, upstreamToClient).ConfigureAwait(false);
        // ClientClosed, not the client loop's completion: that loop closes the upstream's input on its way
        // out, so the upstream may finish (a normal shutdown) before the loop itself has returned.
        if (first == upstreamToClient && !proxy.ClientClosed.IsCompleted && !cancellationToken.IsCancellationRequested)
        {
            // The upstream is gone while the client is still connected: every pending request has been
            // answered (-32001) and the client's output completed, so nothing the client sends can be
            // forwarded or answered any more. Stop reading the client, but do not wait for that loop:
            // a read blocked on a real stdin (a console or pipe stream) ignores cancellation and would
            // keep the gateway alive until the client writes or closes, which it may never do.
            clientIn.CancelPendingRead();
            _ = clientToUpstream.ContinueWith(
                static task => _ = task.Exception,
                CancellationToken.None,
                TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            try
            {
                await upstreamToClient.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return new GatewayRunResult(GatewayStop.Cancelled, proxy.UnansweredRequests);
            }

            return new GatewayRunResult(GatewayStop.UpstreamClosed, proxy.UnansweredRequests);
        }

        GatewayStop stop = GatewayStop.ClientClosed;
        try
        {
            await Task.WhenAll(clientToUpstream, upstreamToClient).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            stop = GatewayStop.Cancelled;
        }

        return new GatewayRunResult(stop, proxy.UnansweredRequests);
    }

    /// <summary>Starts <paramref name="loop"/> on a new background thread (<see cref="TaskCreationOptions.LongRunning"/>), once per session.</summary>
    private static Task StartOnDedicatedThread(Func<Task> loop) =>
        Task.Factory.StartNew(loop, CancellationToken.None, TaskCreationOptions.LongRunning | TaskCreationOptions.DenyChildAttach, TaskScheduler.Default).Unwrap();
}
