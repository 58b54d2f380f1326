using System.Text;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Testing;

/// <summary>
/// Runs a <see cref="PolicyCaseFile"/> against any <see cref="IPolicyEvaluator"/>: the reference
/// interpreter (<c>policyc test</c>) or a compiled evaluator (the generator's tests run every
/// shipped cases file against both). Each case gets a fresh evaluator from the factory, with a
/// fresh in-memory counter store and a <see cref="ManualTimeProvider"/> the runner moves.
/// </summary>
public static class PolicyCaseRunner
{
    /// <summary>Runs every case; <paramref name="createEvaluator"/> builds an evaluator from the options it is given.</summary>
    public static PolicyTestReport Run(PolicyCaseFile file, Func<PolicyEvaluatorOptions, IPolicyEvaluator> createEvaluator)
    {
        var results = new List<PolicyCaseResult>(file.Cases.Count);
        foreach (var testCase in file.Cases) results.Add(RunCase(testCase, createEvaluator));
        return new PolicyTestReport(file.Path, results);
    }

    /// <summary>Runs one case; the first failing check ends it.</summary>
    public static PolicyCaseResult RunCase(PolicyCase testCase, Func<PolicyEvaluatorOptions, IPolicyEvaluator> createEvaluator)
    {
        var clock = new ManualTimeProvider(testCase.Start);
        var evaluator = createEvaluator(new PolicyEvaluatorOptions { Time = clock, Counters = new MemoryCounterStore() });
        foreach (var call in testCase.Calls)
        {
            byte[] name = Encoding.UTF8.GetBytes(call.Tool);
            byte[] arguments = call.ArgumentsJson is null ? [] : Encoding.UTF8.GetBytes(call.ArgumentsJson);
            if (call.Listed is { } listed && evaluator.IsListed(name) != listed)
            {
                return Fail(testCase, call, 0, listed ? "expected in tools/list, but it is not listed" : "expected absent from tools/list, but it is listed");
            }
            for (int i = 0; i < call.Repeat; i++)
            {
                clock.UtcNow = testCase.Start + TimeSpan.FromSeconds(call.At + i * call.Every);
                var toolCall = new ToolCall(name, arguments, call.Grant, call.Session);
                Decision decision = call.Approved ? evaluator.ReserveLimits(toolCall) : evaluator.Evaluate(toolCall);
                if (call.Rollback) decision.Reservation.Rollback();
                else decision.Reservation.Commit();
                if (call.Expect is { } expect && Mismatch(expect, decision) is { } problem)
                {
                    return Fail(testCase, call, i, problem);
                }
            }
        }
        return new PolicyCaseResult(testCase, null);
    }

    private static PolicyCaseResult Fail(PolicyCase testCase, PolicyCaseCall call, int repetition, string problem)
    {
        string where = call.Repeat > 1 ? $"{call.Pointer} (repetition {repetition + 1} of {call.Repeat})" : call.Pointer;
        return new PolicyCaseResult(testCase, $"{where}: {call.Tool}: {problem}");
    }

    /// <summary>Describes how <paramref name="actual"/> differs from <paramref name="expect"/>, or null when it matches.</summary>
    public static string? Mismatch(PolicyExpectation expect, in Decision actual)
    {
        var problems = new List<string>();
        if (actual.Kind != expect.Decision) problems.Add($"decision {Name(expect.Decision)} expected");
        if (expect.Rule is { } rule && actual.Rule != rule) problems.Add($"rule {rule} expected");
        if (expect.Reason is { } reason && actual.Reason != reason) problems.Add($"reason \"{reason}\" expected");
        if (expect.Counter is { } counter && actual.Counter != counter) problems.Add($"counter '{counter}' expected");
        if (expect.RetryAfter is { } retry && !SameRetry(retry, actual.RetryAfter)) problems.Add($"retry after {FormatRetry(retry)} expected");
        if (problems.Count == 0) return null;
        return string.Join("; ", problems) + "; got " + Describe(actual);
    }

    /// <summary>A decision in the words of the cases format.</summary>
    public static string Describe(in Decision decision)
    {
        var text = new StringBuilder(Name(decision.Kind)).Append(" (").Append(decision.Rule).Append(')');
        if (decision.Reason is not null) text.Append(": \"").Append(decision.Reason).Append('"');
        if (decision.Kind == DecisionKind.RateLimited)
        {
            text.Append(", counter '").Append(decision.Counter).Append("', retry after ").Append(FormatRetry(decision.RetryAfter));
        }
        return text.ToString();
    }

    /// <summary>allow, deny, rate_limited or approval_required.</summary>
    public static string Name(DecisionKind kind) => kind switch
    {
        DecisionKind.Allow => "allow",
        DecisionKind.Deny => "deny",
        DecisionKind.RateLimited => "rate_limited",
        _ => "approval_required",
    };

    private static string FormatRetry(TimeSpan retry) =>
        retry == TimeSpan.MaxValue ? "never" : retry.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + "s";

    // Retry times are written in seconds; a millisecond is the resolution a cases file can express.
    private static bool SameRetry(TimeSpan expected, TimeSpan actual) =>
        expected == TimeSpan.MaxValue || actual == TimeSpan.MaxValue
            ? expected == actual
            : Math.Abs((expected - actual).TotalMilliseconds) < 1;
}

/// <summary>The outcome of one case.</summary>
/// <param name="Case">The case.</param>
/// <param name="Failure">What went wrong, or null when it passed.</param>
public sealed record PolicyCaseResult(PolicyCase Case, string? Failure)
{
    /// <summary>Whether every check of the case held.</summary>
    public bool Passed => Failure is null;
}

/// <summary>The outcome of a cases file.</summary>
/// <param name="Path">The cases file.</param>
/// <param name="Results">One result per case, in file order.</param>
public sealed record PolicyTestReport(string Path, IReadOnlyList<PolicyCaseResult> Results)
{
    /// <summary>Cases that passed.</summary>
    public int Passed => Count(passed: true);

    /// <summary>Cases that failed.</summary>
    public int Failed => Count(passed: false);

    /// <summary>The summary line: <c>N passed, M failed</c>.</summary>
    public string Summary => $"{Passed} passed, {Failed} failed";

    private int Count(bool passed)
    {
        int n = 0;
        foreach (var result in Results) n += result.Passed == passed ? 1 : 0;
        return n;
    }
}
