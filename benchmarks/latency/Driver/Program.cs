// The end-to-end latency harness's driver: starts every configuration, initializes an MCP session with each,
// then measures tools/call round trips in round-robin rounds (so drift in the machine's load hits every
// configuration alike) and reports medians over rounds. Usage: benchmarks/latency/run.sh (docs/performance.md).
using System.Diagnostics;
using System.Globalization;
using System.Text;
using LatencyDriver;

var options = Options.Parse(args);
var configs = File.ReadAllLines(options.ConfigFile)
    .Where(l => l.Length > 0 && l[0] != '#')
    .Select(ConfigSpec.Parse)
    .ToList();
var results = configs.ToDictionary(c => c.Name, c => new ConfigResult(c));

Console.Error.WriteLine($"latency driver: {configs.Count} configurations, {options.Rounds} rounds × ({options.Calls} sequential + {options.ConcurrentCalls} with {options.InFlight} in flight), {options.Starts} starts each");

// 1. Start-up: exec → answer to initialize, configurations interleaved. One unmeasured start first, so
// the driver's own first-use costs (Process, pipes, JSON reader) are not charged to the first configuration.
try
{
    Open(configs[0], out _).Dispose();
}
catch (Exception e)
{
    results[configs[0].Name].Fail("start", e);
}
for (int s = 0; s < options.Starts; s++)
{
    foreach (ConfigSpec c in configs)
    {
        ConfigResult r = results[c.Name];
        if (r.Failure is not null)
        {
            continue;
        }
        try
        {
            long t0 = Stopwatch.GetTimestamp();
            using IDisposable session = Open(c, out _);
            r.StartMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        catch (Exception e)
        {
            r.Fail("start", e);
        }
    }
}

// 2. One long-lived session per configuration, warmed up.
var sessions = new Dictionary<string, IDisposable>();
foreach (ConfigSpec c in configs)
{
    ConfigResult r = results[c.Name];
    if (r.Failure is not null)
    {
        continue;
    }
    try
    {
        IDisposable session = Open(c, out Process process);
        sessions[c.Name] = session;
        r.Pid = process.Id;
        var warm = new long[options.Warmup];
        Sequential(session, warm);
        Concurrent(session, new long[Math.Max(options.InFlight, options.Warmup)], options.InFlight);
    }
    catch (Exception e)
    {
        r.Fail("warm-up", e);
    }
}

// 3. Measured rounds, round-robin; the starting configuration rotates so none always runs first.
var seq = new long[options.Calls];
var conc = new long[options.ConcurrentCalls];
for (int round = 0; round < options.Rounds; round++)
{
    for (int k = 0; k < configs.Count; k++)
    {
        ConfigSpec c = configs[(k + round) % configs.Count];
        ConfigResult r = results[c.Name];
        if (r.Failure is not null)
        {
            continue;
        }
        try
        {
            IDisposable session = sessions[c.Name];
            Sequential(session, seq);
            r.Sequential.Add(Stats.Of(seq, 0));
            long wall = Concurrent(session, conc, options.InFlight);
            r.Concurrent.Add(Stats.Of(conc, wall));
        }
        catch (Exception e)
        {
            r.Fail($"round {round + 1}", e);
        }
    }
    Console.Error.WriteLine($"  round {round + 1}/{options.Rounds} done");
}

// 4. Peak resident set of each proxy process (not its children), read before it is stopped.
foreach (ConfigResult r in results.Values)
{
    r.PeakRssKiB = r.Pid is int pid ? ReadVmHwm(pid) : null;
}
foreach (IDisposable session in sessions.Values)
{
    session.Dispose();
}

// 5. Footprint under many HTTP sessions: a fresh process per HTTP configuration, N sessions opened and
// kept open (each initialized, then a few calls; every session of `http -- COMMAND` has its own upstream
// child), then a burst of calls on all of them at once; VmHWM of the proxy process itself.
if (options.Sessions > 0)
{
    foreach (ConfigSpec c in configs.Where(c => c.IsHttp))
    {
        ConfigResult r = results[c.Name];
        if (r.Failure is not null)
        {
            continue;
        }
        var open = new List<HttpSession>();
        try
        {
            ConfigSpec started = c.WithFreePort();
            Process process = started.Start();
            var first = new HttpSession(process, new Uri(started.Url));
            open.Add(first);
            first.Initialize(TimeSpan.FromSeconds(30));
            for (int i = 1; i < options.Sessions; i++)
            {
                var more = new HttpSession(process, new Uri(started.Url), ownsProcess: false);
                open.Add(more);
                more.Initialize(TimeSpan.FromSeconds(30));
                more.Sequential(new long[2]);
            }
            Parallel.ForEach(open, new ParallelOptions { MaxDegreeOfParallelism = options.InFlight }, s => s.Sequential(new long[5]));
            r.SessionsPeakRssKiB = ReadVmHwm(process.Id);
        }
        catch (Exception e)
        {
            r.Fail($"{options.Sessions} HTTP sessions", e);
        }
        finally
        {
            // The extra sessions only close their connections; the first one stops the process.
            for (int i = open.Count - 1; i >= 0; i--)
            {
                open[i].Dispose();
            }
        }
    }
    Console.Error.WriteLine($"  {options.Sessions} HTTP sessions per HTTP configuration done");
}

string report = Report.Markdown(configs, results, options);
Console.WriteLine(report);
if (options.MarkdownFile is not null)
{
    File.WriteAllText(options.MarkdownFile, report);
}
int failed = results.Values.Count(r => r.Failure is not null);
foreach (ConfigResult r in results.Values.Where(r => r.Failure is not null))
{
    Console.Error.WriteLine($"FAILED {r.Spec.Name}: {r.Failure}");
}
Console.Error.WriteLine(failed == 0 ? $"all {configs.Count} configurations worked" : $"{failed} of {configs.Count} configurations failed");
return failed == 0 ? 0 : 1;

static IDisposable Open(ConfigSpec c, out Process process)
{
    c = c.WithFreePort();
    process = c.Start();
    try
    {
        if (c.IsHttp)
        {
            var http = new HttpSession(process, new Uri(c.Url));
            http.Initialize(TimeSpan.FromSeconds(30));
            return http;
        }
        var stdio = new StdioSession(process);
        stdio.Initialize();
        return stdio;
    }
    catch
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }
        throw;
    }
}

static void Sequential(IDisposable session, long[] latencies)
{
    if (session is StdioSession s)
    {
        s.Sequential(latencies);
    }
    else
    {
        ((HttpSession)session).Sequential(latencies);
    }
}

static long Concurrent(IDisposable session, long[] latencies, int inFlight) =>
    session is StdioSession s ? s.Concurrent(latencies, inFlight) : ((HttpSession)session).Concurrent(latencies, inFlight);

static long? ReadVmHwm(int pid)
{
    try
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
    }
    catch (IOException)
    {
    }
    return null;
}

namespace LatencyDriver
{
    /// <summary>Command-line options of the driver.</summary>
    internal sealed record Options(string ConfigFile, int Calls, int ConcurrentCalls, int InFlight, int Rounds, int Warmup, int Starts,
        string? MarkdownFile, List<(string Label, string Path)> Sizes, string Command, int Sessions)
    {
        public static Options Parse(string[] args)
        {
            string? config = null;
            string? markdown = null;
            string command = "";
            int calls = 1000, concurrent = 2000, inFlight = 8, rounds = 5, warmup = 300, starts = 11, sessions = 100;
            var sizes = new List<(string, string)>();
            for (int i = 0; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
                int NextInt() => int.Parse(Next(), CultureInfo.InvariantCulture);
                switch (args[i])
                {
                    case "--configs": config = Next(); break;
                    case "--calls": calls = NextInt(); break;
                    case "--concurrent-calls": concurrent = NextInt(); break;
                    case "--in-flight": inFlight = NextInt(); break;
                    case "--rounds": rounds = NextInt(); break;
                    case "--warmup": warmup = NextInt(); break;
                    case "--starts": starts = NextInt(); break;
                    case "--sessions": sessions = NextInt(); break;
                    case "--markdown": markdown = Next(); break;
                    case "--command": command = Next(); break;
                    case "--size":
                        string v = Next();
                        int eq = v.IndexOf('=', StringComparison.Ordinal);
                        sizes.Add((v[..eq], v[(eq + 1)..]));
                        break;
                    default: throw new ArgumentException($"unknown option {args[i]}");
                }
            }
            return new Options(config ?? throw new ArgumentException("--configs FILE is required"), calls, concurrent, inFlight, rounds, warmup, starts, markdown, sizes, command, sessions);
        }
    }

    /// <summary>Latency statistics of one measured batch, in microseconds.</summary>
    internal readonly record struct Stats(double P50, double P90, double P99, double Mean, double CallsPerSecond)
    {
        public static Stats Of(long[] ticks, long wallTicks)
        {
            long[] sorted = (long[])ticks.Clone();
            Array.Sort(sorted);
            double us = 1e6 / Stopwatch.Frequency;
            double P(double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)] * us;
            long sum = 0;
            foreach (long t in sorted)
            {
                sum += t;
            }
            // Sequential: one call at a time, so throughput is the inverse of the mean.
            double seconds = wallTicks > 0 ? (double)wallTicks / Stopwatch.Frequency : sum / (double)Stopwatch.Frequency;
            return new Stats(P(0.50), P(0.90), P(0.99), sum * us / sorted.Length, sorted.Length / seconds);
        }
    }

    /// <summary>Everything measured for one configuration.</summary>
    internal sealed class ConfigResult(ConfigSpec spec)
    {
        public ConfigSpec Spec { get; } = spec;
        public List<double> StartMs { get; } = [];
        public List<Stats> Sequential { get; } = [];
        public List<Stats> Concurrent { get; } = [];
        public int? Pid { get; set; }
        public long? PeakRssKiB { get; set; }
        public long? SessionsPeakRssKiB { get; set; }
        public string? Failure { get; private set; }

        public void Fail(string phase, Exception e) => Failure ??= $"{phase}: {e.GetType().Name}: {e.Message}";
    }

    /// <summary>The Markdown report: medians over rounds, added latency paired by round against the baseline.</summary>
    internal static class Report
    {
        public static double Median(IEnumerable<double> values)
        {
            double[] v = values.OrderBy(x => x).ToArray();
            if (v.Length == 0)
            {
                return double.NaN;
            }
            return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
        }

        /// <summary>Median over rounds of (config − baseline) for one statistic, paired round by round.</summary>
        private static double Added(ConfigResult r, ConfigResult? b, Func<ConfigResult, List<Stats>> series, Func<Stats, double> stat)
        {
            if (b is null || b == r)
            {
                return double.NaN;
            }
            List<Stats> a = series(r), bs = series(b);
            int n = Math.Min(a.Count, bs.Count);
            return Median(Enumerable.Range(0, n).Select(i => stat(a[i]) - stat(bs[i])));
        }

        private static string F(double v) => double.IsNaN(v) ? "–" : v >= 100 ? v.ToString("F0", CultureInfo.InvariantCulture) : v.ToString("F1", CultureInfo.InvariantCulture);

        private static string Ratio(double peer, double ours) =>
            double.IsNaN(peer) || double.IsNaN(ours) ? "–" : ours <= 0 ? "∞ (ours ≤ 0)" : (peer / ours).ToString("F0", CultureInfo.InvariantCulture) + "×";

        public static string Markdown(List<ConfigSpec> configs, Dictionary<string, ConfigResult> results, Options o)
        {
            var sb = new StringBuilder();
            ConfigResult? Get(string name) => results.TryGetValue(name, out ConfigResult? r) ? r : null;
            void Table(string title, Func<ConfigResult, List<Stats>> series, bool throughputOnly)
            {
                sb.AppendLine($"**{title}** (µs; median over {o.Rounds} rounds)").AppendLine();
                sb.AppendLine("| configuration | p50 | p90 | p99 | mean | calls/s | added p50 | added p99 | added p50 ÷ reference's |");
                sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
                foreach (ConfigSpec c in configs)
                {
                    ConfigResult r = results[c.Name];
                    if (series(r).Count == 0)
                    {
                        sb.AppendLine($"| {c.Name} | failed: {r.Failure} | | | | | | | |");
                        continue;
                    }
                    List<Stats> s = series(r);
                    ConfigResult? baseline = Get(c.Baseline);
                    ConfigResult? reference = Get(c.Reference);
                    double addedP50 = Added(r, baseline, series, x => x.P50);
                    double addedP99 = Added(r, baseline, series, x => x.P99);
                    double refAdded = reference is null || reference == r ? double.NaN : Added(reference, Get(reference.Spec.Baseline), series, x => x.P50);
                    sb.AppendLine($"| {c.Name} | {F(Median(s.Select(x => x.P50)))} | {F(Median(s.Select(x => x.P90)))} | {F(Median(s.Select(x => x.P99)))} | {F(Median(s.Select(x => x.Mean)))} | {Median(s.Select(x => x.CallsPerSecond)).ToString("F0", CultureInfo.InvariantCulture)} | {F(addedP50)} | {F(addedP99)} | {Ratio(addedP50, refAdded)} |");
                }
                sb.AppendLine();
            }
            sb.AppendLine($"Command: `{o.Command}`  ").AppendLine($"Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; load average at the end: {LoadAverage()}; {Environment.ProcessorCount} cores").AppendLine();
            Table($"Sequential tools/call, {o.Calls} calls per round", r => r.Sequential, false);
            Table($"Concurrent tools/call, {o.InFlight} in flight, {o.ConcurrentCalls} calls per round", r => r.Concurrent, true);
            sb.AppendLine($"**Footprint** (start: exec → answer to `initialize`, median of {o.Starts} starts; peak RSS: VmHWM of the proxy process itself after all rounds)").AppendLine();
            sb.AppendLine("| configuration | start ms (median) | start ms (min) | peak RSS MiB |");
            sb.AppendLine("|---|---:|---:|---:|");
            foreach (ConfigSpec c in configs)
            {
                ConfigResult r = results[c.Name];
                string rss = r.PeakRssKiB is long k ? (k / 1024.0).ToString("F1", CultureInfo.InvariantCulture) : "–";
                string min = r.StartMs.Count > 0 ? r.StartMs.Min().ToString("F1", CultureInfo.InvariantCulture) : "–";
                sb.AppendLine($"| {c.Name} | {Median(r.StartMs).ToString("F1", CultureInfo.InvariantCulture)} | {min} | {rss} |");
            }
            sb.AppendLine();
            if (o.Sessions > 0 && configs.Any(c => c.IsHttp))
            {
                sb.AppendLine($"**Footprint under {o.Sessions} concurrent HTTP sessions** (a fresh process; {o.Sessions} sessions initialized and kept open, a few calls each, then {o.InFlight} at a time; VmHWM of the proxy process itself, not its upstream children)").AppendLine();
                sb.AppendLine("| configuration | peak RSS MiB |");
                sb.AppendLine("|---|---:|");
                foreach (ConfigSpec c in configs.Where(c => c.IsHttp))
                {
                    ConfigResult r = results[c.Name];
                    string rss = r.SessionsPeakRssKiB is long k ? (k / 1024.0).ToString("F1", CultureInfo.InvariantCulture) : "failed: " + r.Failure;
                    sb.AppendLine($"| {c.Name} | {rss} |");
                }
                sb.AppendLine();
            }
            foreach ((string label, string path) in o.Sizes)
            {
                long bytes = new FileInfo(path).Length;
                sb.AppendLine($"- size of {label}: {bytes:N0} bytes ({bytes / 1048576.0:F2} MiB)");
            }
            return sb.ToString();
        }

        private static string LoadAverage()
        {
            try
            {
                return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
            }
            catch (IOException)
            {
                return "unknown";
            }
        }
    }
}
