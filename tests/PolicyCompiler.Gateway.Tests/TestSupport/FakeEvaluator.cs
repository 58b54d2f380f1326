using System.Text;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Tests.TestSupport;

/// <summary>
/// A small hand-written policy for the gateway's tests: tools are allowed unless listed as denied,
/// rate-limited, approval-required, hidden or throwing. Allowed calls take a reservation from a
/// <see cref="RecordingCounterStore"/> so tests can see commits and rollbacks.
/// </summary>
internal sealed class FakeEvaluator : IPolicyEvaluator
{
    public HashSet<string> Denied { get; } = new(StringComparer.Ordinal);
    public HashSet<string> RateLimited { get; } = new(StringComparer.Ordinal);
    public HashSet<string> NeedsApproval { get; } = new(StringComparer.Ordinal);
    public HashSet<string> Hidden { get; } = new(StringComparer.Ordinal);
    public HashSet<string> Throwing { get; } = new(StringComparer.Ordinal);
    public RecordingCounterStore Counters { get; } = new();
    public List<(string Tool, string Arguments, string Grant, string Session)> Calls { get; } = new();

    public FakeEvaluator(PolicyMode mode = PolicyMode.Enforce)
    {
        Policy = new PolicyInfo("fake", new string('a', 64), mode, "{ \"version\": \"1\" }\n");
    }

    public PolicyInfo Policy { get; }

    public Decision Evaluate(in ToolCall call)
    {
        string tool = Encoding.UTF8.GetString(call.NameUtf8);
        lock (Calls)
        {
            Calls.Add((tool, Encoding.UTF8.GetString(call.ArgumentsJson), call.Grant, call.Session));
        }

        if (Throwing.Contains(tool))
        {
            throw new InvalidOperationException("evaluator bug");
        }

        if (Denied.Contains(tool) || Hidden.Contains(tool))
        {
            return Decision.Deny($"/tools/{tool}/action", "destructive tool");
        }

        if (RateLimited.Contains(tool))
        {
            return Decision.RateLimited($"/tools/{tool}/limits/0", "at most 30 calls a minute", "rate", TimeSpan.FromSeconds(12.2));
        }

        if (NeedsApproval.Contains(tool))
        {
            return Decision.ApprovalRequired($"/tools/{tool}/rules/0", "a human must approve");
        }

        return Decision.Allow($"/tools/{tool}", Counters.Reserve());
    }

    public Decision ReserveLimits(in ToolCall call) => Decision.Allow("/", Counters.Reserve());

    public bool IsListed(ReadOnlySpan<byte> toolNameUtf8)
    {
        string tool = Encoding.UTF8.GetString(toolNameUtf8);
        return !Hidden.Contains(tool) && !Denied.Contains(tool);
    }
}

/// <summary>Counts reservations, commits and rollbacks.</summary>
internal sealed class RecordingCounterStore : ICounterStore
{
    private long _next;
    public int Reserved;
    public int Committed;
    public int RolledBack;

    public CounterReservation Reserve()
    {
        Interlocked.Increment(ref Reserved);
        return new CounterReservation(this, Interlocked.Increment(ref _next));
    }

    public bool TryReserve(ReadOnlySpan<CounterRequest> requests, DateTimeOffset now, out CounterReservation reservation, out int refusedIndex, out TimeSpan retryAfter)
    {
        reservation = Reserve();
        refusedIndex = -1;
        retryAfter = TimeSpan.Zero;
        return true;
    }

    public void Commit(in CounterReservation reservation) => Interlocked.Increment(ref Committed);

    public void Rollback(in CounterReservation reservation) => Interlocked.Increment(ref RolledBack);
}
