using System.ComponentModel;
using System.Diagnostics;
using System.IO.Pipelines;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Transport.Stdio;

/// <summary>
/// Runs the upstream MCP server as a child process and the gateway between it and our own
/// stdin/stdout (MCP basic/transports#stdio; shutdown as in basic/lifecycle#stdio: close the server's
/// input, wait, then terminate). The environment passes through; the child's stderr is ours.
/// <list type="bullet">
/// <item>The client closes our stdin → the child's stdin is closed; it has <see cref="GatewayOptions.ShutdownGrace"/>
/// to exit, then its process tree is killed. Exit status: the child's.</item>
/// <item>SIGINT/SIGTERM/SIGHUP/SIGQUIT → forwarded to the child, same grace, same kill. Exit status: the child's.</item>
/// <item>The child closes its stdout while the client is connected → pending requests get error -32001,
/// a message on stderr, exit status the child's if non-zero, else 1.</item>
/// </list>
/// Whatever happens (exceptions included), the child is not left running; on Linux, when the entry point
/// routes the launcher's internal command, not even after a SIGKILL of the gateway (<see cref="ParentDeathLauncher"/>).
/// </summary>
public static partial class StdioServerProcess
{
    /// <summary>Exit status when the upstream command cannot be started (as shells do for "command not found").</summary>
    public const int CannotStartExitCode = 127;

    /// <summary>
    /// Runs <paramref name="command"/> behind the gateway, the client being this process's own stdin and
    /// stdout; returns the exit status to report. On Linux both are read and written through their file
    /// descriptors (<see cref="FileDescriptorPipeReader"/>, <see cref="FileDescriptorPipeWriter"/>), as the
    /// child's pipes are: one thread per direction, woken once per batch of input (docs/performance.md, "Stdio").
    /// </summary>
    /// <param name="command">The upstream server's executable.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="options">Session settings.</param>
    /// <param name="audit">The audit log or null.</param>
    /// <param name="logger">Diagnostics (stderr).</param>
    /// <param name="cancellationToken">Stops everything (the child is killed).</param>
    public static Task<int> RunAsync(
        string command,
        IReadOnlyList<string> arguments,
        IPolicyEvaluator evaluator,
        GatewayOptions options,
        AuditLog? audit,
        ILogger logger,
        CancellationToken cancellationToken = default)
    {
        if (!UnixPipeIo.IsSupported)
        {
            return RunAsync(command, arguments, Console.OpenStandardInput(), Console.OpenStandardOutput(), evaluator, options, audit, logger, cancellationToken);
        }

        return RunCoreAsync(
            command,
            arguments,
            static () => (FileDescriptorPipeReader.ForStandardDescriptor(0), FileDescriptorPipeWriter.ForStandardDescriptor(1)),
            evaluator,
            options,
            audit,
            logger,
            cancellationToken);
    }

    /// <summary>Runs <paramref name="command"/> behind the gateway; returns the exit status to report.</summary>
    /// <param name="command">The upstream server's executable.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="clientIn">The client's messages (our stdin).</param>
    /// <param name="clientOut">Where the client reads (our stdout).</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="options">Session settings.</param>
    /// <param name="audit">The audit log or null.</param>
    /// <param name="logger">Diagnostics (stderr).</param>
    /// <param name="cancellationToken">Stops everything (the child is killed).</param>
    public static Task<int> RunAsync(
        string command,
        IReadOnlyList<string> arguments,
        Stream clientIn,
        Stream clientOut,
        IPolicyEvaluator evaluator,
        GatewayOptions options,
        AuditLog? audit,
        ILogger logger,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clientIn);
        ArgumentNullException.ThrowIfNull(clientOut);
        return RunCoreAsync(
            command,
            arguments,
            () => (PipeReader.Create(clientIn, new StreamPipeReaderOptions(leaveOpen: true)), PipeWriter.Create(clientOut, new StreamPipeWriterOptions(leaveOpen: true))),
            evaluator,
            options,
            audit,
            logger,
            cancellationToken);
    }

    private static async Task<int> RunCoreAsync(
        string command,
        IReadOnlyList<string> arguments,
        Func<(PipeReader In, PipeWriter Out)> openClient,
        IPolicyEvaluator evaluator,
        GatewayOptions options,
        AuditLog? audit,
        ILogger logger,
        CancellationToken cancellationToken)
    {
        // Linux: through the launcher, so the server dies with the gateway even on SIGKILL (ParentDeathLauncher).
        ProcessStartInfo startInfo = ParentDeathLauncher.CreateUpstreamStartInfo(command, arguments);

        Process child;
        try
        {
            child = ParentDeathLauncher.Start(startInfo);
        }
        catch (Win32Exception e)
        {
            await Console.Error.WriteLineAsync($"gateway: error: cannot start the upstream server '{command}': {e.Message}").ConfigureAwait(false);
            return CannotStartExitCode;
        }

        using (child)
        using (var signals = new SignalForwarder(child, options.ShutdownGrace, logger))
        {
            (PipeReader clientReader, PipeWriter clientWriter) = openClient();
            bool descriptors = OpenUpstream(child, out PipeReader upstreamReader, out PipeWriter upstreamWriter);
            var proxy = new PolicyProxy(clientWriter, evaluator, options, audit, logger);
            Task childExited = child.WaitForExitAsync(CancellationToken.None);
            Task<GatewayRunResult> run = StdioGateway.RunSessionAsync(proxy, clientReader, upstreamReader, upstreamWriter, cancellationToken, dedicatedThreads: descriptors);
            GatewayRunResult result;
            try
            {
                Task first = await Task.WhenAny(run, proxy.ClientClosed, childExited).ConfigureAwait(false);
                if (!run.IsCompleted)
                {
                    if (first == proxy.ClientClosed)
                    {
                        // The client is gone and the child's stdin closed: give it the grace period, then kill it.
                        await WaitForExitOrKillAsync(child, options.ShutdownGrace, logger).ConfigureAwait(false);
                    }

                    // The child has exited (on its own, of a forwarded signal, or killed): its stdout closes
                    // with it and the session ends. A grandchild may still hold that stdout open: do not
                    // wait for it forever; cancelling the read ends the upstream loop, which answers
                    // every pending request.
                    if (await Task.WhenAny(run, Task.Delay(options.ShutdownGrace, CancellationToken.None)).ConfigureAwait(false) != run)
                    {
                        upstreamReader.CancelPendingRead();
                    }
                }

                result = await run.ConfigureAwait(false);
            }
            finally
            {
                if (!child.HasExited)
                {
                    await WaitForExitOrKillAsync(child, cancellationToken.IsCancellationRequested ? TimeSpan.Zero : options.ShutdownGrace, logger).ConfigureAwait(false);
                }
            }

            await childExited.ConfigureAwait(false);
            int exitCode = child.ExitCode;
            GatewayLog.UpstreamExited(logger, exitCode);
            if (result.Stop == GatewayStop.UpstreamClosed && !signals.Signalled)
            {
                await Console.Error.WriteLineAsync(
                    $"gateway: error: the upstream MCP server exited (status {exitCode}) while the client was still connected; " +
                    $"{result.UnansweredRequests} pending request(s) were answered with error -32001").ConfigureAwait(false);
                return UpstreamClosedExitCode(exitCode);
            }

            return exitCode;
        }
    }

    /// <summary>
    /// The child's end of the session: its pipes' file descriptors read and written directly where that is
    /// supported (true), else the process streams through <see cref="PipeReader.Create(Stream, StreamPipeReaderOptions?)"/>.
    /// On Unix those streams are socket-backed pipes whose asynchronous reads wake the socket engine's epoll
    /// thread and then a pool thread: two hand-offs per upstream message that the descriptors avoid.
    /// </summary>
    private static bool OpenUpstream(Process child, out PipeReader reader, out PipeWriter writer)
    {
        if (UnixPipeIo.IsSupported
            && child.StandardOutput.BaseStream is PipeStream output
            && child.StandardInput.BaseStream is PipeStream input)
        {
            reader = FileDescriptorPipeReader.ForHandle(output.SafePipeHandle, output);
            writer = FileDescriptorPipeWriter.ForHandle(input.SafePipeHandle, input);
            return true;
        }

        reader = PipeReader.Create(child.StandardOutput.BaseStream);
        writer = PipeWriter.Create(child.StandardInput.BaseStream);
        return false;
    }

    /// <summary>
    /// The exit status when the upstream ended the session while the client was still connected: always
    /// non-zero, so the client (or a supervisor) can tell the gateway failed — the server's status when it
    /// is non-zero, else 1.
    /// </summary>
    public static int UpstreamClosedExitCode(int upstreamExitCode) => upstreamExitCode != 0 ? upstreamExitCode : 1;

    private static async Task WaitForExitOrKillAsync(Process child, TimeSpan grace, ILogger logger)
    {
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await child.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            GatewayLog.KillingUpstream(logger, grace.TotalSeconds);
            Kill(child);
        }
    }

    private static void Kill(Process child)
    {
        try
        {
            child.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException)
        {
            // Already gone.
        }
    }

    /// <summary>
    /// Forwards termination signals to the child and cancels their default action (terminating us):
    /// we exit when the child does, after the proxy has answered and the audit log is flushed.
    /// </summary>
    private sealed class SignalForwarder : IDisposable
    {
        private readonly Process _child;
        private readonly TimeSpan _grace;
        private readonly ILogger _logger;
        private readonly List<PosixSignalRegistration> _registrations = new();
        private int _signalled;

        public SignalForwarder(Process child, TimeSpan grace, ILogger logger)
        {
            _child = child;
            _grace = grace;
            _logger = logger;
            if (OperatingSystem.IsWindows())
            {
                return;
            }

            foreach (PosixSignal signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT })
            {
                _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
            }
        }

        public bool Signalled => Volatile.Read(ref _signalled) != 0;

        private void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            int number = context.Signal switch
            {
                PosixSignal.SIGINT => 2,
                PosixSignal.SIGQUIT => 3,
                PosixSignal.SIGHUP => 1,
                _ => 15,
            };
            GatewayLog.ForwardingSignal(_logger, context.Signal.ToString(), _child.Id);
            try
            {
                _ = NativeMethods.Kill(_child.Id, number);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                Kill(_child);
            }

            if (Interlocked.Exchange(ref _signalled, 1) == 0)
            {
                _ = KillAfterGraceAsync();
            }
        }

        private async Task KillAfterGraceAsync() => await WaitForExitOrKillAsync(_child, _grace, _logger).ConfigureAwait(false);

        public void Dispose()
        {
            foreach (PosixSignalRegistration registration in _registrations)
            {
                registration.Dispose();
            }
        }
    }

    private static partial class NativeMethods
    {
        // kill(2): PosixSignalRegistration can receive signals but .NET has no API to send one to another process.
        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        internal static partial int Kill(int pid, int signal);
    }
}
