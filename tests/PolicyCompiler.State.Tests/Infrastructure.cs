using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using PolicyCompiler.State.Redis;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace PolicyCompiler.State.Tests;

/// <summary>A directory deleted with the test.</summary>
public sealed class TempDirectory : IDisposable
{
    private int _next;

    public TempDirectory()
    {
        FullPath = Path.Combine(Path.GetTempPath(), "policycompiler-state-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(FullPath);
    }

    public string FullPath { get; }

    public string File(string name, bool unique = false) =>
        Path.Combine(FullPath, unique ? Interlocked.Increment(ref _next) + "-" + name : name);

    public void Dispose()
    {
        try { Directory.Delete(FullPath, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Marks a test class whose tests need a real redis-server.</summary>
public interface IRequiresRedis;

/// <summary>
/// A fact that is skipped, loudly, when its class needs Redis and no <c>redis-server</c> is installed
/// (CI installs it, so there it always runs). Works for facts inherited from the contract base class:
/// the discoverer sees the concrete class.
/// </summary>
[XunitTestCaseDiscoverer("PolicyCompiler.State.Tests.StoreFactDiscoverer", "PolicyCompiler.State.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class StoreFactAttribute : FactAttribute;

public sealed class StoreFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        bool needsRedis = typeof(IRequiresRedis).IsAssignableFrom(testMethod.TestClass.Class.ToRuntimeType());
        string? skip = needsRedis && RedisServer.Executable is null ? RedisServer.MissingMessage : null;
        yield return new StoreTestCase(diagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, skip);
    }
}

public sealed class StoreTestCase : XunitTestCase
{
    private string? _skip;

    [Obsolete("Called by the de-serializer", error: true)]
    public StoreTestCase() { }

    public StoreTestCase(IMessageSink sink, TestMethodDisplay display, TestMethodDisplayOptions options, ITestMethod method, string? skip)
        : base(sink, display, options, method)
    {
        _skip = skip;
        SkipReason = skip;
    }

    protected override string? GetSkipReason(IAttributeInfo factAttribute) => _skip ?? base.GetSkipReason(factAttribute);

    public override void Serialize(IXunitSerializationInfo data)
    {
        base.Serialize(data);
        data.AddValue("StoreSkip", _skip);
    }

    public override void Deserialize(IXunitSerializationInfo data)
    {
        _skip = data.GetValue<string?>("StoreSkip");
        base.Deserialize(data);
    }
}

/// <summary>One redis-server process on a free loopback port, without persistence; can be stopped and restarted.</summary>
public sealed class RedisServer : IDisposable
{
    public const string MissingMessage =
        "SKIPPED: redis-server is not installed, so the Redis counter store is NOT tested. Install it (apt-get install -y redis-server); .ci/run does.";

    private Process? _process;

    public RedisServer()
    {
        Port = FreePort();
        if (Executable is not null)
        {
            Start();
        }
    }

    /// <summary>The redis-server on PATH, or null.</summary>
    public static string? Executable { get; } = FindOnPath("redis-server");

    public int Port { get; }

    public RedisLocation Location => new("127.0.0.1", Port, 0);

    public void RequireInstalled()
    {
        if (Executable is null) throw new InvalidOperationException(MissingMessage);
    }

    public void Start()
    {
        RequireInstalled();
        var info = new ProcessStartInfo(Executable!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { "--port", Port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no" })
        {
            info.ArgumentList.Add(arg);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (deadline.Elapsed < TimeSpan.FromSeconds(20) && !_process.HasExited)
            {
                Thread.Sleep(50);
            }
        }
    }

    public void Stop()
    {
        if (_process is null) return;
        try { _process.Kill(); } catch (InvalidOperationException) { }
        _process.WaitForExit();
        _process.Dispose();
        _process = null;
    }

    public void Dispose() => Stop();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? FindOnPath(string name)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (dir.Length == 0) continue;
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}

[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisServer>
{
    public const string Name = "redis";
}
