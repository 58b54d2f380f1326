using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace PolicyCompiler.Gateway.Transport.Stdio;

/// <summary>
/// The system calls behind <see cref="FileDescriptorPipeReader"/> and <see cref="FileDescriptorPipeWriter"/>:
/// <c>poll(2)</c>, <c>read(2)</c>, <c>write(2)</c> and an <c>eventfd(2)</c> to interrupt a waiting poll.
/// Linux only (eventfd); elsewhere the stdio gateway keeps the stream-based pipes.
/// </summary>
internal static unsafe partial class UnixPipeIo
{
    private const short POLLIN = 0x001;
    private const short POLLOUT = 0x004;
    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const int EPIPE = 32;
    private const int EFD_NONBLOCK = 0x800;
    private const int EFD_CLOEXEC = 0x80000;

    private static int s_supported; // 0 unknown, 1 yes, -1 no

    /// <summary>
    /// Whether file-descriptor pipes can be used here: Linux, and libc's entry points resolve (checked once by
    /// creating and closing an eventfd, so a missing library is found before a session depends on it).
    /// </summary>
    public static bool IsSupported
    {
        get
        {
            int known = Volatile.Read(ref s_supported);
            if (known != 0)
            {
                return known > 0;
            }

            bool supported = false;
            if (OperatingSystem.IsLinux())
            {
                try
                {
                    using EventHandle probe = CreateEvent();
                    supported = true;
                }
                catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or IOException)
                {
                }
            }

            Volatile.Write(ref s_supported, supported ? 1 : -1);
            return supported;
        }
    }

    /// <summary>A non-blocking, close-on-exec eventfd: written to wake a reader waiting in <see cref="WaitReadable"/>.</summary>
    public static EventHandle CreateEvent()
    {
        int fd = NativeMethods.EventFd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0)
        {
            throw Error("eventfd", Marshal.GetLastPInvokeError());
        }

        return new EventHandle(fd);
    }

    /// <summary>
    /// Blocks until <paramref name="fd"/> is readable (data, end of file or an error to report) or the event is
    /// signalled. Returns true when <paramref name="fd"/> is ready; false when woken by the event (drained).
    /// </summary>
    public static bool WaitReadable(int fd, int eventFd)
    {
        PollFd* fds = stackalloc PollFd[2];
        while (true)
        {
            fds[0] = new PollFd { Fd = fd, Events = POLLIN };
            fds[1] = new PollFd { Fd = eventFd, Events = POLLIN };
            if (NativeMethods.Poll(fds, 2, -1) < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    continue;
                }

                throw Error("poll", errno);
            }

            if (fds[1].REvents != 0)
            {
                ulong drained;
                _ = NativeMethods.Read(eventFd, &drained, sizeof(ulong));
                return false;
            }

            if (fds[0].REvents != 0)
            {
                return true; // POLLIN, POLLHUP, POLLERR or POLLNVAL: the read says which
            }
        }
    }

    /// <summary>
    /// One <c>read(2)</c> of at most <paramref name="buffer"/>'s length; 0 at end of file, -1 when it would block
    /// (a descriptor someone else made non-blocking: poll again).
    /// </summary>
    public static int Read(int fd, Span<byte> buffer)
    {
        fixed (byte* pointer = buffer)
        {
            while (true)
            {
                nint read = NativeMethods.Read(fd, pointer, (nuint)buffer.Length);
                if (read >= 0)
                {
                    return (int)read;
                }

                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    continue;
                }

                if (errno == EAGAIN)
                {
                    return -1;
                }

                throw Error("read", errno);
            }
        }
    }

    /// <summary>
    /// Writes all of <paramref name="data"/> (blocking while the pipe is full). A reader that has gone away
    /// (<c>EPIPE</c>; the runtime ignores SIGPIPE) is an <see cref="IOException"/>, or, with
    /// <paramref name="ignoreBrokenPipe"/>, drops the data as the console stream does for our own stdout.
    /// </summary>
    public static void WriteAll(int fd, ReadOnlySpan<byte> data, bool ignoreBrokenPipe)
    {
        fixed (byte* start = data)
        {
            int offset = 0;
            while (offset < data.Length)
            {
                nint written = NativeMethods.Write(fd, start + offset, (nuint)(data.Length - offset));
                if (written >= 0)
                {
                    offset += (int)written;
                    continue;
                }

                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR)
                {
                    continue;
                }

                if (errno == EAGAIN)
                {
                    WaitWritable(fd);
                    continue;
                }

                if (errno == EPIPE && ignoreBrokenPipe)
                {
                    return;
                }

                throw Error("write", errno);
            }
        }
    }

    /// <summary>Signals the event (wakes <see cref="WaitReadable"/>); a no-op once the handle is closed.</summary>
    public static void Signal(EventHandle handle)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            ulong one = 1;
            _ = NativeMethods.Write((int)handle.DangerousGetHandle(), &one, sizeof(ulong));
        }
        catch (ObjectDisposedException)
        {
            // The reader is complete: nobody is waiting.
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static void WaitWritable(int fd)
    {
        var pollFd = new PollFd { Fd = fd, Events = POLLOUT };
        while (NativeMethods.Poll(&pollFd, 1, -1) < 0 && Marshal.GetLastPInvokeError() == EINTR)
        {
        }
    }

    private static IOException Error(string call, int errno) =>
        new($"{call}: {Marshal.GetPInvokeErrorMessage(errno)}", errno);

    /// <summary>An eventfd, closed when disposed (after every <see cref="Signal"/> in progress has returned).</summary>
    internal sealed class EventHandle : SafeHandleZeroOrMinusOneIsInvalid
    {
        public EventHandle(int fd)
            : base(ownsHandle: true) => SetHandle(fd);

        /// <summary>The descriptor, for <see cref="WaitReadable"/> (only while the handle is open).</summary>
        public int Fd => (int)handle;

        protected override bool ReleaseHandle() => NativeMethods.Close((int)handle) == 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    private static partial class NativeMethods
    {
        [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
        internal static partial int Poll(PollFd* fds, nuint count, int timeout);

        [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
        internal static partial nint Read(int fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
        internal static partial nint Write(int fd, void* buffer, nuint count);

        [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
        internal static partial int EventFd(uint initialValue, int flags);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        internal static partial int Close(int fd);
    }
}
