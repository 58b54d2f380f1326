using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PolicyCompiler.Gateway.Transport.Stdio;

/// <summary>
/// Ties the upstream server's life to the gateway's on Linux, so that not even a SIGKILL of the
/// gateway (which no process can react to) leaves the server running.
/// <code>
///   gateway ──(1) Process.Start ──▶ gateway __policycompiler-exec-upstream PPID COMMAND ARGS...
///                                     (2) prctl(PR_SET_PDEATHSIG, SIGKILL)
///                                     (3) getppid() == PPID, else exit (the gateway already died)
///                                     (4) execvp(COMMAND, ARGS) ──▶ the server, same pid, same stdio
/// </code>
/// (1) The gateway re-executes itself (<see cref="Environment.ProcessPath"/>; under <c>dotnet policyc.dll</c>
/// that is <c>dotnet</c>, so the application's .dll comes first) with a hidden internal command, from a
/// thread that lives as long as the gateway (<see cref="Start"/>): the kernel sends the parent-death signal when the thread
/// that forked the child exits, not only when the process does. (2) The death signal survives
/// <c>execve</c>. (3) Closes the race where the gateway dies between the fork and the prctl. (4) The
/// server replaces the launcher, so the pid the gateway holds, its pipes and its signals are the server's.
/// The entry point must route the internal command (<see cref="Hosting.GatewayCommandLine.TryRunInternalCommand"/>);
/// until one does, <see cref="IsEnabled"/> is false and the server is started directly.
/// </summary>
internal static partial class ParentDeathLauncher
{
    /// <summary>The hidden internal command (never shown in help).</summary>
    public const string InternalCommand = "__policycompiler-exec-upstream";

    private const int PR_SET_PDEATHSIG = 1;
    private const int SIGKILL = 9;
    private const int SIGPIPE = 13;
    private const int ENOENT = 2;
    private const int F_SETFD = 2;
    private const int O_CLOEXEC = 0x80000;

    /// <summary>Launcher option: make the next two inherited descriptors the server's stdin and stdout.</summary>
    private const string FdsOption = "--stdio-fds";

    private static volatile bool s_routed;

    /// <summary>Whether the server is started through the launcher (Linux, and the entry point routes the internal command).</summary>
    public static bool IsEnabled => s_routed && OperatingSystem.IsLinux() && !string.IsNullOrEmpty(Environment.ProcessPath);

    /// <summary>Records that this process's entry point routes <see cref="InternalCommand"/> to <see cref="Exec"/>.</summary>
    public static void EnableForThisProcess() => s_routed = true;

    /// <summary>
    /// The start info that runs <paramref name="command"/> through the launcher; with <paramref name="stdio"/>,
    /// the launcher first makes those two inherited descriptors the server's stdin and stdout.
    /// </summary>
    private static ProcessStartInfo CreateStartInfo(string command, IReadOnlyList<string> arguments, (int Input, int Output)? stdio)
    {
        string self = Environment.ProcessPath!;
        var startInfo = new ProcessStartInfo(self);
        if (IsDotnetHost(self))
        {
            // `dotnet app.dll ...`: argv[0] of the managed program is its .dll.
            startInfo.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        }

        startInfo.ArgumentList.Add(InternalCommand);
        startInfo.ArgumentList.Add(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (stdio is (int input, int output))
        {
            startInfo.ArgumentList.Add(FdsOption);
            startInfo.ArgumentList.Add(input.ToString(System.Globalization.CultureInfo.InvariantCulture));
            startInfo.ArgumentList.Add(output.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        startInfo.ArgumentList.Add(command);
        foreach (string argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        return startInfo;
    }

    /// <summary>
    /// The start info of an upstream stdio server: through the launcher where it is enabled (so the server
    /// dies with the gateway), with its stdin and stdout redirected to the gateway and its stderr shared.
    /// </summary>
    public static ProcessStartInfo CreateUpstreamStartInfo(string command, IReadOnlyList<string> arguments)
    {
        ProcessStartInfo startInfo = IsEnabled ? CreateStartInfo(command, arguments, stdio: null) : new ProcessStartInfo(command);
        startInfo.UseShellExecute = false;
        startInfo.RedirectStandardInput = true;
        startInfo.RedirectStandardOutput = true;
        startInfo.RedirectStandardError = false;
        if (!IsEnabled)
        {
            foreach (string argument in arguments)
            {
                startInfo.ArgumentList.Add(argument);
            }
        }

        return startInfo;
    }

    /// <summary>Whether <paramref name="processPath"/> is the <c>dotnet</c> muxer rather than the application itself.</summary>
    internal static bool IsDotnetHost(string processPath)
    {
        string name = Path.GetFileName(processPath);
        return name is "dotnet" or "dotnet.exe";
    }

    /// <summary>
    /// The internal command: <c>__policycompiler-exec-upstream PPID COMMAND [ARGS...]</c>. Returns only
    /// when the server cannot be started (127 not found, 126 otherwise) or the gateway is already gone (1).
    /// </summary>
    public static unsafe int Exec(ReadOnlySpan<string> args)
    {
        if (args.Length < 3 || args[0] != InternalCommand || !int.TryParse(args[1], System.Globalization.CultureInfo.InvariantCulture, out int gateway))
        {
            Console.Error.WriteLine($"{InternalCommand}: internal use only: {InternalCommand} PPID COMMAND [ARGS...]");
            return 2;
        }

        if (!OperatingSystem.IsLinux())
        {
            Console.Error.WriteLine($"{InternalCommand}: only supported on Linux");
            return 126;
        }

        if (NativeMethods.Prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        {
            Console.Error.WriteLine($"gateway: error: prctl(PR_SET_PDEATHSIG) failed: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
            return 126;
        }

        if (NativeMethods.Getppid() != gateway)
        {
            // The gateway died before the death signal was armed: nobody is left to serve.
            return 1;
        }

        // The .NET runtime ignores SIGPIPE and an ignored signal stays ignored across execve: give the
        // server the default disposition it would have had if started directly.
        NativeMethods.Signal(SIGPIPE, 0);

        int first = 2;
        if (args[2] == FdsOption)
        {
            // StartOnPipes: the server's stdin and stdout are the two pipe ends this process inherited.
            if (args.Length < 6
                || !int.TryParse(args[3], System.Globalization.CultureInfo.InvariantCulture, out int input)
                || !int.TryParse(args[4], System.Globalization.CultureInfo.InvariantCulture, out int output)
                || NativeMethods.Dup2(input, 0) < 0
                || NativeMethods.Dup2(output, 1) < 0)
            {
                Console.Error.WriteLine($"{InternalCommand}: internal use only: {InternalCommand} PPID {FdsOption} IN OUT COMMAND [ARGS...]");
                return 126;
            }

            // (Never 0, 1 or 2 in practice: the gateway's own stdio was open when the pipes were made.)
            if (input > 2)
            {
                NativeMethods.Close(input);
            }

            if (output > 2)
            {
                NativeMethods.Close(output);
            }

            first = 5;
        }

        string command = args[first];
        nint[] argv = new nint[args.Length - first + 1];
        for (int i = first; i < args.Length; i++)
        {
            argv[i - first] = Marshal.StringToCoTaskMemUTF8(args[i]);
        }

        fixed (nint* pointer = argv)
        {
            NativeMethods.Execvp(argv[0], pointer);
        }

        // Only reached when execvp failed (the memory is left to the exiting process).
        int errno = Marshal.GetLastPInvokeError();
        Console.Error.WriteLine($"gateway: error: cannot start the upstream server '{command}': {Marshal.GetPInvokeErrorMessage(errno)}");
        return errno == ENOENT ? StdioServerProcess.CannotStartExitCode : 126;
    }

    /// <summary>
    /// Starts <paramref name="startInfo"/> from a thread that outlives every child: this thread when it is
    /// the main thread (it lives as long as the process), else the process's one spawner thread.
    /// </summary>
    /// <remarks>
    /// One spawner for all children, not a parked thread per child: a thread costs its touched stack and
    /// the runtime's per-thread state (about 0.1 MiB of RSS each), which the HTTP gateway's one child per
    /// session multiplied by the number of sessions (docs/performance.md, "RSS under 100 HTTP sessions").
    /// </remarks>
    public static Process Start(ProcessStartInfo startInfo)
    {
        return IsMainThread()
            ? Process.Start(startInfo) ?? throw new InvalidOperationException("the process did not start")
            : Spawner.Instance.Run(() => Process.Start(startInfo) ?? throw new InvalidOperationException("the process did not start"));
    }

    /// <summary>
    /// Starts an upstream server through the launcher (<see cref="IsEnabled"/> must be true) on two pipes of
    /// its own: <paramref name="input"/> writes to its stdin, <paramref name="output"/> reads its stdout.
    /// </summary>
    /// <remarks>
    /// Not <see cref="ProcessStartInfo.RedirectStandardInput"/>/<see cref="ProcessStartInfo.RedirectStandardOutput"/>:
    /// those wrap every child's pipes in a <see cref="StreamWriter"/> and a <see cref="StreamReader"/> with about
    /// 21 KB of buffers the gateway never uses, once per HTTP session (docs/performance.md, "RSS under 100 HTTP
    /// sessions"). The child's two pipe ends are inheritable only while the spawner thread starts this one
    /// process (every upstream is started there, one at a time), so no other child inherits them.
    /// </remarks>
    public static Process StartOnPipes(string command, IReadOnlyList<string> arguments, out Stream input, out Stream output)
    {
        (Process Process, int Input, int Output) started = Spawner.Instance.Run(() =>
        {
            (int childReads, int gatewayWrites) = CreatePipe();
            (int gatewayReads, int childWrites) = CreatePipe();
            try
            {
                ProcessStartInfo startInfo = CreateStartInfo(command, arguments, (childReads, childWrites));
                startInfo.UseShellExecute = false;
                startInfo.RedirectStandardError = false;
                Inheritable(childReads);
                Inheritable(childWrites);
                Process process = Process.Start(startInfo) ?? throw new InvalidOperationException("the process did not start");
                return (process, gatewayWrites, gatewayReads);
            }
            catch
            {
                NativeMethods.Close(gatewayWrites);
                NativeMethods.Close(gatewayReads);
                throw;
            }
            finally
            {
                NativeMethods.Close(childReads);
                NativeMethods.Close(childWrites);
            }
        });

        input = new AnonymousPipeClientStream(PipeDirection.Out, new SafePipeHandle(started.Input, ownsHandle: true));
        output = new AnonymousPipeClientStream(PipeDirection.In, new SafePipeHandle(started.Output, ownsHandle: true));
        return started.Process;
    }

    private static unsafe (int Read, int Write) CreatePipe()
    {
        int* ends = stackalloc int[2];
        if (NativeMethods.Pipe2(ends, O_CLOEXEC) != 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError());
        }

        return (ends[0], ends[1]);
    }

    private static void Inheritable(int fd)
    {
        if (NativeMethods.Fcntl(fd, F_SETFD, 0) != 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError());
        }
    }

    private static bool IsMainThread()
    {
        try
        {
            return NativeMethods.Gettid() == Environment.ProcessId;
        }
        catch (EntryPointNotFoundException)
        {
            return false; // glibc before 2.30: the spawner is always correct
        }
    }

    /// <summary>A background thread that starts processes, one at a time, for the life of the process.</summary>
    private sealed class Spawner
    {
        public static readonly Spawner Instance = new();

        private readonly BlockingCollection<Action> _work = new();

        private Spawner()
        {
            var thread = new Thread(Run) { IsBackground = true, Name = "upstream spawner" };
            thread.Start();
        }

        /// <summary>Runs <paramref name="start"/> on the spawner thread and returns what it returns.</summary>
        public T Run<T>(Func<T> start)
        {
            var started = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            _work.Add(() =>
            {
                try
                {
                    started.SetResult(start());
                }
                catch (Exception e)
                {
                    started.SetException(e);
                }
            });
            return started.Task.GetAwaiter().GetResult();
        }

        private void Run()
        {
            foreach (Action work in _work.GetConsumingEnumerable())
            {
                work();
            }
        }
    }

    private static unsafe partial class NativeMethods
    {
        // prctl(2) is variadic in C; the integer arguments are passed as on a fixed signature on Linux x64 and arm64.
        [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
        internal static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);

        [LibraryImport("libc", EntryPoint = "getppid")]
        internal static partial int Getppid();

        [LibraryImport("libc", EntryPoint = "gettid")]
        internal static partial int Gettid();

        [LibraryImport("libc", EntryPoint = "signal")]
        internal static partial nint Signal(int signal, nint handler);

        [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
        internal static partial int Pipe2(int* fds, int flags);

        [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
        internal static partial int Fcntl(int fd, int command, int argument);

        [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
        internal static partial int Dup2(int oldFd, int newFd);

        [LibraryImport("libc", EntryPoint = "close")]
        internal static partial int Close(int fd);

        [LibraryImport("libc", EntryPoint = "execvp", SetLastError = true)]
        internal static partial int Execvp(nint file, nint* argv);
    }
}
