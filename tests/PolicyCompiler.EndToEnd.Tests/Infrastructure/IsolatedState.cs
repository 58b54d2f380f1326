using System.Runtime.CompilerServices;

namespace PolicyCompiler.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Gateways keep counters in a per-user SQLite file by default ($XDG_STATE_HOME/policycompiler).
/// Every gateway these tests start inherits this process's environment, so pointing XDG_STATE_HOME
/// at a directory of this test run keeps the default store in use while no run sees another's counts.
/// </summary>
internal static class IsolatedState
{
    [ModuleInitializer]
    internal static void UseTestRunStateDirectory()
    {
        var directory = Path.Combine(Path.GetTempPath(), "policycompiler-e2e-state-" + Environment.ProcessId);
        Directory.CreateDirectory(directory);
        Environment.SetEnvironmentVariable("XDG_STATE_HOME", directory);
    }
}
