using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Diagnostics;

/// <summary>
/// The gateway's counters for the admin listener's <c>/metrics</c> (Prometheus text exposition format
/// 0.0.4): decisions by tool and outcome, decision-time and upstream-latency histograms, active
/// sessions, bytes in and out. Recording is lock-free (<see cref="Interlocked"/>) and allocates only
/// the first time a tool name is seen; tool names come from clients, so at most
/// <see cref="MaxTools"/> distinct ones get their own series (the rest count under <c>(other)</c>).
/// </summary>
public sealed class GatewayMetrics
{
    /// <summary>The most distinct tool names with their own series.</summary>
    public const int MaxTools = 256;

    private const string OtherTool = "(other)";

    // Decision time is microseconds of straight-line code; upstream latency is a network round trip.
    private static readonly double[] DecisionBucketsSeconds = [0.000_001, 0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.01];
    private static readonly double[] UpstreamBucketsSeconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly ConcurrentDictionary<string, long[]> _decisions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long[]>.AlternateLookup<ReadOnlySpan<char>> _decisionsByName;
    private readonly Histogram _decisionTime = new(DecisionBucketsSeconds);
    private readonly Histogram _upstreamLatency = new(UpstreamBucketsSeconds);
    private long _bytesIn;
    private long _bytesOut;
    private Func<int>? _activeSessions;
    private Func<int>? _pendingApprovals;
    private readonly ConcurrentDictionary<string, long[]> _approvalOutcomes = new(StringComparer.Ordinal);

    /// <summary>Creates empty metrics.</summary>
    public GatewayMetrics() => _decisionsByName = _decisions.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Bytes received from clients so far.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);

    /// <summary>Bytes sent to clients so far.</summary>
    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary>How many decisions of <paramref name="kind"/> were made on <paramref name="tool"/>.</summary>
    public long Decisions(string tool, DecisionKind kind) =>
        _decisions.TryGetValue(tool, out long[]? counts) ? Interlocked.Read(ref counts[(int)kind]) : 0;

    /// <summary>Supplies the active-session gauge (the HTTP listener's session table).</summary>
    public void ObserveActiveSessions(Func<int> activeSessions) => _activeSessions = activeSessions;

    /// <summary>Supplies the pending-approvals gauge (the approval broker, docs/approvals.md).</summary>
    public void ObservePendingApprovals(Func<int> pendingApprovals) => _pendingApprovals = pendingApprovals;

    /// <summary>Counts an ended approval by outcome (<c>approved</c>, <c>denied</c>, <c>timed_out</c>, <c>withdrawn</c>, <c>standing</c>).</summary>
    public void RecordApprovalOutcome(string outcome)
    {
        long[] count = _approvalOutcomes.GetOrAdd(outcome, static _ => new long[1]);
        Interlocked.Increment(ref count[0]);
    }

    /// <summary>How many approvals ended with <paramref name="outcome"/>.</summary>
    public long ApprovalOutcomes(string outcome) =>
        _approvalOutcomes.TryGetValue(outcome, out long[]? count) ? Interlocked.Read(ref count[0]) : 0;

    /// <summary>Counts a decision on a tool and how long it took.</summary>
    public void RecordDecision(ReadOnlySpan<byte> toolNameUtf8, DecisionKind kind, long decisionNanoseconds)
    {
        long[] counts = CountsFor(toolNameUtf8);
        Interlocked.Increment(ref counts[(int)kind]);
        _decisionTime.Observe(decisionNanoseconds / 1e9);
    }

    /// <summary>Observes one upstream round trip (request sent → response headers).</summary>
    public void RecordUpstreamLatency(long nanoseconds) => _upstreamLatency.Observe(nanoseconds / 1e9);

    /// <summary>Counts bytes received from a client.</summary>
    public void AddBytesIn(long count) => Interlocked.Add(ref _bytesIn, count);

    /// <summary>Counts bytes sent to a client.</summary>
    public void AddBytesOut(long count) => Interlocked.Add(ref _bytesOut, count);

    /// <summary>Writes every metric in the Prometheus text format.</summary>
    public void WritePrometheus(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.Write("# HELP policycompiler_decisions_total tools/call decisions by tool and outcome.\n");
        output.Write("# TYPE policycompiler_decisions_total counter\n");
        foreach (KeyValuePair<string, long[]> entry in _decisions)
        {
            for (int kind = 0; kind < entry.Value.Length; kind++)
            {
                long count = Interlocked.Read(ref entry.Value[kind]);
                if (count == 0)
                {
                    continue;
                }

                output.Write("policycompiler_decisions_total{tool=\"");
                output.Write(EscapeLabel(entry.Key));
                output.Write("\",decision=\"");
                output.Write(Encoding.UTF8.GetString(ReplyWriter.DecisionName((DecisionKind)kind)));
                output.Write("\"} ");
                output.Write(count.ToString(CultureInfo.InvariantCulture));
                output.Write('\n');
            }
        }

        _decisionTime.Write(output, "policycompiler_decision_duration_seconds", "Time to decide one tools/call.");
        _upstreamLatency.Write(output, "policycompiler_upstream_latency_seconds", "Upstream round trip of a forwarded request, until its response headers.");
        output.Write("# HELP policycompiler_active_sessions MCP sessions open through the gateway.\n");
        output.Write("# TYPE policycompiler_active_sessions gauge\n");
        output.Write("policycompiler_active_sessions ");
        output.Write((_activeSessions?.Invoke() ?? 0).ToString(CultureInfo.InvariantCulture));
        output.Write('\n');
        if (_pendingApprovals is not null)
        {
            output.Write("# HELP policycompiler_approvals_pending Tool calls held for a human's approval.\n");
            output.Write("# TYPE policycompiler_approvals_pending gauge\n");
            output.Write("policycompiler_approvals_pending ");
            output.Write(_pendingApprovals().ToString(CultureInfo.InvariantCulture));
            output.Write('\n');
            output.Write("# HELP policycompiler_approvals_total Ended approvals by outcome (standing: covered by an earlier session-scoped approval).\n");
            output.Write("# TYPE policycompiler_approvals_total counter\n");
            foreach (KeyValuePair<string, long[]> entry in _approvalOutcomes)
            {
                output.Write("policycompiler_approvals_total{outcome=\"");
                output.Write(entry.Key);
                output.Write("\"} ");
                output.Write(Interlocked.Read(ref entry.Value[0]).ToString(CultureInfo.InvariantCulture));
                output.Write('\n');
            }
        }

        output.Write("# HELP policycompiler_client_bytes_received_total Bytes received from clients.\n");
        output.Write("# TYPE policycompiler_client_bytes_received_total counter\n");
        output.Write("policycompiler_client_bytes_received_total ");
        output.Write(BytesIn.ToString(CultureInfo.InvariantCulture));
        output.Write('\n');
        output.Write("# HELP policycompiler_client_bytes_sent_total Bytes sent to clients.\n");
        output.Write("# TYPE policycompiler_client_bytes_sent_total counter\n");
        output.Write("policycompiler_client_bytes_sent_total ");
        output.Write(BytesOut.ToString(CultureInfo.InvariantCulture));
        output.Write('\n');
    }

    private long[] CountsFor(ReadOnlySpan<byte> toolNameUtf8)
    {
        Span<char> name = stackalloc char[256];
        int length = toolNameUtf8.Length <= 256 && Encoding.UTF8.TryGetChars(toolNameUtf8, name, out int written) ? written : -1;
        if (length >= 0 && _decisionsByName.TryGetValue(name[..length], out long[]? counts))
        {
            return counts;
        }

        string key = length >= 0 && _decisions.Count < MaxTools ? new string(name[..length]) : OtherTool;
        return _decisions.GetOrAdd(key, static _ => new long[4]);
    }

    private static string EscapeLabel(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>A cumulative Prometheus histogram with fixed buckets.</summary>
    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length + 1];
        private long _sumNanoseconds;

        public void Observe(double seconds)
        {
            int bucket = bounds.Length;
            for (int i = 0; i < bounds.Length; i++)
            {
                if (seconds <= bounds[i])
                {
                    bucket = i;
                    break;
                }
            }

            Interlocked.Increment(ref _counts[bucket]);
            Interlocked.Add(ref _sumNanoseconds, (long)(seconds * 1e9));
        }

        public void Write(TextWriter output, string name, string help)
        {
            output.Write($"# HELP {name} {help}\n# TYPE {name} histogram\n");
            long cumulative = 0;
            for (int i = 0; i < bounds.Length; i++)
            {
                cumulative += Interlocked.Read(ref _counts[i]);
                output.Write($"{name}_bucket{{le=\"{bounds[i].ToString("R", CultureInfo.InvariantCulture)}\"}} {cumulative.ToString(CultureInfo.InvariantCulture)}\n");
            }

            cumulative += Interlocked.Read(ref _counts[bounds.Length]);
            output.Write($"{name}_bucket{{le=\"+Inf\"}} {cumulative.ToString(CultureInfo.InvariantCulture)}\n");
            output.Write($"{name}_sum {(Interlocked.Read(ref _sumNanoseconds) / 1e9).ToString("R", CultureInfo.InvariantCulture)}\n");
            output.Write($"{name}_count {cumulative.ToString(CultureInfo.InvariantCulture)}\n");
        }
    }
}
