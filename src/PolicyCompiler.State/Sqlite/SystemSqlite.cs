using System.Reflection;
using System.Runtime.InteropServices;
using SQLitePCL;

namespace PolicyCompiler.State.Sqlite;

/// <summary>
/// Points Microsoft.Data.Sqlite at the operating system's SQLite library.
/// </summary>
/// <remarks>
/// The default Microsoft.Data.Sqlite bundle ships its own <c>libe_sqlite3.so</c> next to the executable,
/// which breaks "a gateway is one native executable". SQLitePCLRaw's <c>sqlite3</c> provider binds to a
/// library named <c>sqlite3</c> instead; Debian's runtime package (<c>libsqlite3-0</c>) installs only
/// <c>libsqlite3.so.0</c> (the unversioned name comes with <c>-dev</c>), so a resolver maps the name to the
/// versioned soname first. The library is loaded on first use: a gateway that keeps its counters in
/// memory or Redis never needs it.
/// </remarks>
internal static class SystemSqlite
{
    private static readonly Lock Gate = new();
    private static bool _initialized;

    /// <summary>The names tried, in order, for the platform's SQLite library.</summary>
    internal static string[] Candidates { get; } = OperatingSystem.IsWindows()
        ? ["winsqlite3.dll", "sqlite3.dll"]
        : OperatingSystem.IsMacOS()
            ? ["libsqlite3.dylib", "/usr/lib/libsqlite3.dylib"]
            : ["libsqlite3.so.0", "libsqlite3.so"];

    /// <summary>Installs the provider once per process (idempotent, thread-safe).</summary>
    public static void EnsureInitialized()
    {
        lock (Gate)
        {
            if (_initialized)
            {
                return;
            }

            NativeLibrary.SetDllImportResolver(typeof(SQLite3Provider_sqlite3).Assembly, Resolve);
            raw.SetProvider(new SQLite3Provider_sqlite3());
            _initialized = true;
        }
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != "sqlite3")
        {
            return IntPtr.Zero;
        }

        foreach (string candidate in Candidates)
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out IntPtr handle))
            {
                return handle;
            }
        }

        throw new DllNotFoundException(
            $"the system SQLite library was not found (tried {string.Join(", ", Candidates)}); install it (Debian/Ubuntu: apt-get install libsqlite3-0) or use --state memory or redis://");
    }
}
