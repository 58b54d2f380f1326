// Measures the counter stores: µs per reserve+commit with one caller, and reserve+commit calls/s with
// 16 concurrent callers (one store instance shared by the callers, as in a gateway process).
//
//   dotnet run -c Release --project benchmarks/PolicyCompiler.StateBenchmarks [-- --calls N] [--redis redis://host:port/0]
//
// Without --redis it starts its own redis-server (from PATH) on a free loopback port, without persistence.
// The SQLite database is a fresh file in the temp directory (WAL, synchronous=NORMAL, as the gateway uses it).
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.State;
using PolicyCompiler.State.Redis;
using PolicyCompiler.State.Sqlite;

int calls = 20_000;
string? redisUrl = null;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--calls") calls = int.Parse(args[++i], CultureInfo.InvariantCulture);
    else if (args[i] == "--redis") redisUrl = args[++i];
}

const int Callers = 16;
Process? redisProcess = null;
string directory = Path.Combine(Path.GetTempPath(), "policycompiler-statebench-" + Guid.NewGuid().ToString("N"));
Directory.CreateDirectory(directory);
try
{
    if (redisUrl is null)
    {
        (redisProcess, redisUrl) = StartRedis();
    }

    StateSpecification.TryParse(redisUrl, out StateSpecification? redis, out string? error);
    if (redis?.Redis is null) throw new ArgumentException(error);

    Console.WriteLine($"{calls} reserve+commit calls per measurement; {Environment.ProcessorCount} cores; {RuntimeInfo()}");
    Console.WriteLine();
    Console.WriteLine("| store | µs per reserve (1 caller) | calls/s (1 caller) | calls/s (16 callers) |");
    Console.WriteLine("|---|---:|---:|---:|");
    Measure("memory", () => new MemoryCounterStore(), calls);
    Measure("sqlite (WAL)", () => new SqliteCounterStore(Path.Combine(directory, "counters.db"), "bench:", TimeSpan.FromSeconds(30)), calls / 4);
    Measure("redis (loopback)", () => new RedisCounterStore(redis.Redis, "bench" + Guid.NewGuid().ToString("N") + ":", TimeSpan.FromSeconds(30)), calls / 4);
}
finally
{
    if (redisProcess is not null)
    {
        redisProcess.Kill();
        redisProcess.WaitForExit();
    }

    Directory.Delete(directory, recursive: true);
}

static void Measure(string name, Func<ICounterStore> create, int calls)
{
    ICounterStore store = create();
    try
    {
        // One limit per call, as the common policy has; a max no run reaches, so every call is admitted
        // and the cost measured is the full reserve (prune, sum, insert) plus commit.
        var requests = new[] { new CounterRequest("bench", 3600, WindowAlignment.Sliding, "grant", null, 1, double.MaxValue) };
        Run(store, requests, Math.Min(1000, calls / 10), 1); // warm-up: JIT, connections, prepared statements
        double single = Run(store, requests, calls, 1);
        double parallel = Run(store, requests, calls, Callers);
        Console.WriteLine($"| {name} | {1e6 / single:0.0} | {single:0} | {parallel:0} |");
    }
    finally
    {
        (store as IDisposable)?.Dispose();
    }
}

// Returns calls per second.
static double Run(ICounterStore store, CounterRequest[] requests, int calls, int callers)
{
    int next = 0;
    var watch = Stopwatch.StartNew();
    var threads = new Thread[callers];
    for (int t = 0; t < callers; t++)
    {
        threads[t] = new Thread(() =>
        {
            while (Interlocked.Increment(ref next) <= calls)
            {
                if (!store.TryReserve(requests, DateTimeOffset.UtcNow, out var reservation, out _, out _))
                {
                    throw new InvalidOperationException("a benchmark call was refused");
                }

                reservation.Commit();
            }
        });
        threads[t].Start();
    }

    foreach (Thread thread in threads) thread.Join();
    return calls / watch.Elapsed.TotalSeconds;
}

static (Process, string) StartRedis()
{
    int port;
    using (var listener = new TcpListener(IPAddress.Loopback, 0))
    {
        listener.Start();
        port = ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, UseShellExecute = false };
    foreach (string arg in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
    {
        info.ArgumentList.Add(arg);
    }

    Process process = Process.Start(info) ?? throw new InvalidOperationException("cannot start redis-server");
    process.OutputDataReceived += (_, _) => { };
    process.BeginOutputReadLine();
    for (int attempt = 0; ; attempt++)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            break;
        }
        catch (SocketException) when (attempt < 200)
        {
            Thread.Sleep(50);
        }
    }

    return (process, $"redis://127.0.0.1:{port}/0");
}

static string RuntimeInfo() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
