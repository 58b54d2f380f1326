using System;
using System.Collections.Generic;
using System.Globalization;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Semantic checks on a read policy: counters shared with different settings, too many limits on a
/// tool, rules that are never reached, conditions that can never be true, entries that never decide
/// a call, and tool names no server should have. Works on the model; positions come from
/// <see cref="PolicySpans"/>.
/// </summary>
internal static class PolicyValidator
{
    /// <summary>The most limits that may apply to one tool (the <c>*</c> layer's plus the entry's).</summary>
    public const int MaxLimitsPerTool = 8;

    public static void Validate(PolicyDocument policy, PolicySpans spans, DiagnosticBag report)
    {
        // The '*' layer W: its rules and limits apply to every call (the reader already rejected
        // action, reason and hide on it, PC0024).
        ToolEntry? wildcard = null;
        foreach (var entry in policy.Tools)
        {
            if (PolicyPatterns.IsLayer(entry.Name)) wildcard = entry;
        }

        CheckToolNames(policy, spans, report);
        CheckCounters(policy, spans, report);
        CheckLimitCounts(policy, wildcard, spans, report);
        CheckReachability(policy, wildcard, spans, report);
        CheckConditions(policy, spans, report);
        CheckSelection(policy, spans, report);
    }

    private static void Report(DiagnosticBag report, PolicySpans spans, PolicyDiagnosticDescriptor descriptor, string pointer, params object[] args)
    {
        spans.TryGetSpan(pointer, out int offset, out int length);
        report.Add(descriptor, offset, length, args);
    }

    private static void ReportAtValue(DiagnosticBag report, PolicySpans spans, PolicyDiagnosticDescriptor descriptor, string pointer, params object[] args)
    {
        if (spans.Value(pointer) is { } node) report.Add(descriptor, node, args);
        else Report(report, spans, descriptor, pointer, args);
    }

    // MCP tool names are 1–128 characters of [A-Za-z0-9_.-] (SHOULD). A name outside that set is
    // allowed (servers do not always follow the SHOULD) but is most likely a typo.
    private static void CheckToolNames(PolicyDocument policy, PolicySpans spans, DiagnosticBag report)
    {
        foreach (var entry in policy.Tools)
        {
            if (entry.Name.Length == 0) continue;
            bool ok = entry.IsPattern || entry.Name.Length <= 128;
            foreach (char c in entry.Name)
            {
                if (!PolicyModelReader.IsNameChar(c) && !(entry.IsPattern && (c == '*' || c == '?'))) ok = false;
            }
            if (!ok) Report(report, spans, PolicyDiagnostics.UnusualToolName, entry.Pointer, entry.Name);
        }
    }

    private static void CheckCounters(PolicyDocument policy, PolicySpans spans, DiagnosticBag report)
    {
        var first = new Dictionary<string, PolicyLimit>(StringComparer.Ordinal);
        foreach (var entry in policy.Tools)
        {
            foreach (var limit in entry.Limits)
            {
                if (!first.TryGetValue(limit.Counter, out var earlier))
                {
                    first.Add(limit.Counter, limit);
                    continue;
                }
                var differences = new List<string>();
                if (earlier.Window.Seconds != limit.Window.Seconds) differences.Add("window");
                if (earlier.Window.Alignment != limit.Window.Alignment) differences.Add("align");
                if (earlier.Scope != limit.Scope) differences.Add("scope");
                if ((earlier.Key is null) != (limit.Key is null) || (earlier.Key is not null && PolicyPaths.Identity(earlier.Key) != PolicyPaths.Identity(limit.Key!))) differences.Add("key");
                if (differences.Count > 0)
                {
                    ReportAtValue(report, spans, PolicyDiagnostics.CounterConflict, limit.Pointer + "/counter", limit.Counter, string.Join(" and ", differences.ToArray()), earlier.Pointer);
                }
            }
        }
    }

    private static void CheckLimitCounts(PolicyDocument policy, ToolEntry? wildcard, PolicySpans spans, DiagnosticBag report)
    {
        int shared = wildcard?.Limits.Count ?? 0;
        foreach (var entry in policy.Tools)
        {
            int count = ReferenceEquals(entry, wildcard) ? shared : entry.Limits.Count + shared;
            // When '*' alone is over the bound, say so once at '*' rather than at every entry.
            bool ownFault = ReferenceEquals(entry, wildcard) || shared <= MaxLimitsPerTool;
            if (count > MaxLimitsPerTool && ownFault)
            {
                Report(report, spans, PolicyDiagnostics.TooManyLimits, entry.Pointer, count, entry.Name);
            }
        }
        foreach (var entry in policy.Tools)
        {
            foreach (var limit in entry.Limits)
            {
                if (limit.IncrementFrom is null && limit.Increment > limit.Max)
                {
                    ReportAtValue(report, spans, PolicyDiagnostics.LimitAdmitsNothing, limit.Pointer + "/increment",
                        PolicyText.FormatNumber(limit.Increment), PolicyText.FormatNumber(limit.Max));
                }
            }
        }
    }

    // Rules run first-match-wins over '*' rules then the entry's: anything after a rule with no
    // condition is dead. Each dead rule is reported once, even when several entries reach it.
    private static void CheckReachability(PolicyDocument policy, ToolEntry? wildcard, PolicySpans spans, DiagnosticBag report)
    {
        var reported = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in policy.Tools)
        {
            string? blocker = null;
            if (wildcard is not null && !ReferenceEquals(entry, wildcard))
            {
                foreach (var rule in wildcard.Rules)
                {
                    if (IsUnconditional(rule)) { blocker = rule.Pointer; break; }
                }
            }
            foreach (var rule in entry.Rules)
            {
                if (blocker is not null)
                {
                    if (reported.Add(rule.Pointer)) ReportAtValue(report, spans, PolicyDiagnostics.UnreachableRule, rule.Pointer, blocker);
                }
                else if (IsUnconditional(rule))
                {
                    blocker = rule.Pointer;
                }
            }
        }
    }

    private static bool IsUnconditional(PolicyRule rule) => rule.When is null || AlwaysTrue(rule.When);

    private static bool AlwaysTrue(Condition condition)
    {
        switch (condition)
        {
            case AllCondition all:
                foreach (var c in all.Conditions) if (!AlwaysTrue(c)) return false;
                return true;
            case AnyCondition any:
                foreach (var c in any.Conditions) if (AlwaysTrue(c)) return true;
                return false;
            case NotCondition not:
                return not.Condition is AnyCondition { Conditions.Count: 0 };
            default:
                return false;
        }
    }

    private static void CheckConditions(PolicyDocument policy, PolicySpans spans, DiagnosticBag report)
    {
        foreach (var entry in policy.Tools)
        {
            foreach (var rule in entry.Rules)
            {
                if (rule.When is not null) CheckAndGroup(rule.When, spans, report);
            }
        }
    }

    /// <summary>
    /// Checks one conjunction: the tests reachable from <paramref name="root"/> through <c>all</c>
    /// (and implicit AND). Each branch of an <c>any</c> is its own conjunction; <c>not</c> is not
    /// entered (a contradiction under it makes the <c>not</c> always true, which is harmless).
    /// </summary>
    private static void CheckAndGroup(Condition root, PolicySpans spans, DiagnosticBag report)
    {
        var tests = new List<TestCondition>();
        var branches = new List<Condition>();
        Condition? never = null;
        Flatten(root, tests, branches, ref never);
        if (never is not null)
        {
            Report(report, spans, PolicyDiagnostics.ConditionNeverTrue, never.Pointer,
                never is AnyCondition ? "'any' with no conditions never holds" : "'not' of a condition that always holds");
        }
        else
        {
            var byPath = new Dictionary<string, List<TestCondition>>(StringComparer.Ordinal);
            foreach (var test in tests)
            {
                string id = PolicyPaths.Identity(test.Path);
                if (!byPath.TryGetValue(id, out var list)) byPath.Add(id, list = new List<TestCondition>());
                list.Add(test);
                if (!Satisfiable(list))
                {
                    string? partner = null;
                    for (int i = 0; i < list.Count - 1 && partner is null; i++)
                    {
                        if (!Satisfiable(new List<TestCondition> { list[i], test })) partner = Describe(list[i]);
                    }
                    string message = list.Count == 1
                        ? $"{test.Path.Text} cannot satisfy '{Describe(test)}'"
                        : partner is not null
                            ? $"{test.Path.Text} cannot satisfy both '{partner}' and '{Describe(test)}'"
                            : $"{test.Path.Text} cannot satisfy '{Describe(test)}' together with the tests before it";
                    Report(report, spans, PolicyDiagnostics.ConditionNeverTrue, test.Pointer, message);
                    break;
                }
            }
        }
        foreach (var branch in branches) CheckAndGroup(branch, spans, report);
    }

    private static void Flatten(Condition condition, List<TestCondition> tests, List<Condition> branches, ref Condition? never)
    {
        switch (condition)
        {
            case TestCondition test:
                tests.Add(test);
                break;
            case AllCondition all:
                foreach (var c in all.Conditions) Flatten(c, tests, branches, ref never);
                break;
            case AnyCondition any:
                if (any.Conditions.Count == 0) never ??= any;
                else if (any.Conditions.Count == 1) Flatten(any.Conditions[0], tests, branches, ref never);
                else foreach (var c in any.Conditions) branches.Add(c);
                break;
            case NotCondition not:
                if (AlwaysTrue(not.Condition)) never ??= not;
                break;
        }
    }

    private static string Describe(TestCondition test) =>
        test.Operator switch
        {
            ConditionOperator.NotIn => "not_in",
            _ => test.Operator.ToString().ToLowerInvariant(),
        } + " " + Describe(test.Operand);

    private static string Describe(JsonConstant constant) => constant.Kind switch
    {
        ConstantKind.String => "\"" + constant.String + "\"",
        ConstantKind.Number => PolicyText.FormatNumber(constant.Number),
        ConstantKind.Boolean => constant.Boolean ? "true" : "false",
        ConstantKind.Null => "null",
        _ => "[" + string.Join(", ", ToStrings(constant.Items)) + "]",
    };

    private static string[] ToStrings(EquatableArray<JsonConstant> items)
    {
        var result = new string[items.Count];
        for (int i = 0; i < result.Length; i++) result[i] = Describe(items[i]);
        return result;
    }

    [Flags]
    private enum Kinds
    {
        None = 0,
        String = 1,
        Number = 2,
        Boolean = 4,
        Null = 8,
        Array = 16,
        Object = 32,
        Any = String | Number | Boolean | Null | Array | Object,
    }

    private static Kinds KindOf(JsonConstant constant) => constant.Kind switch
    {
        ConstantKind.String => Kinds.String,
        ConstantKind.Number => Kinds.Number,
        ConstantKind.Boolean => Kinds.Boolean,
        ConstantKind.Null => Kinds.Null,
        _ => Kinds.Array,
    };

    /// <summary>
    /// Whether some JSON value makes every test of <paramref name="tests"/> (all on one path) True.
    /// Sound for "unsatisfiable": it only answers false when no value can satisfy them all; when in
    /// doubt (regexes, globs against ranges...) it answers true.
    /// </summary>
    private static bool Satisfiable(List<TestCondition> tests)
    {
        bool mustExist = false, mustBeMissing = false;
        var kinds = Kinds.Any;
        double low = double.NegativeInfinity, high = double.PositiveInfinity;
        bool lowOpen = false, highOpen = false;
        JsonConstant? pinned = null;
        List<JsonConstant>? allowed = null;
        var excluded = new List<JsonConstant>();
        string? prefix = null, suffix = null;

        foreach (var test in tests)
        {
            var operand = test.Operand;
            if (test.Operator == ConditionOperator.Exists)
            {
                if (operand.Boolean) mustExist = true;
                else mustBeMissing = true;
                continue;
            }
            // Every other operator is False on a missing value.
            mustExist = true;
            switch (test.Operator)
            {
                case ConditionOperator.Eq:
                    kinds &= KindOf(operand);
                    if (pinned is not null && !pinned.Equals(operand)) return false;
                    pinned = operand;
                    break;
                case ConditionOperator.Neq:
                    excluded.Add(operand);
                    break;
                case ConditionOperator.In:
                {
                    var set = new List<JsonConstant>();
                    var inKinds = Kinds.None;
                    foreach (var item in operand.Items)
                    {
                        inKinds |= KindOf(item);
                        if (allowed is null || allowed.Contains(item)) set.Add(item);
                    }
                    kinds &= inKinds;
                    allowed = set;
                    break;
                }
                case ConditionOperator.NotIn:
                    foreach (var item in operand.Items) excluded.Add(item);
                    break;
                case ConditionOperator.Lt:
                case ConditionOperator.Lte:
                    kinds &= Kinds.Number;
                    if (operand.Number < high || (operand.Number == high && test.Operator == ConditionOperator.Lt))
                    {
                        high = operand.Number;
                        highOpen = test.Operator == ConditionOperator.Lt;
                    }
                    break;
                case ConditionOperator.Gt:
                case ConditionOperator.Gte:
                    kinds &= Kinds.Number;
                    if (operand.Number > low || (operand.Number == low && test.Operator == ConditionOperator.Gt))
                    {
                        low = operand.Number;
                        lowOpen = test.Operator == ConditionOperator.Gt;
                    }
                    break;
                case ConditionOperator.Prefix:
                    kinds &= Kinds.String;
                    if (prefix is null || operand.String!.StartsWith(prefix, StringComparison.Ordinal)) prefix = operand.String;
                    else if (!prefix.StartsWith(operand.String!, StringComparison.Ordinal)) return false;
                    break;
                case ConditionOperator.Suffix:
                    kinds &= Kinds.String;
                    if (suffix is null || operand.String!.EndsWith(suffix, StringComparison.Ordinal)) suffix = operand.String;
                    else if (!suffix.EndsWith(operand.String!, StringComparison.Ordinal)) return false;
                    break;
                case ConditionOperator.Regex:
                case ConditionOperator.Glob:
                    kinds &= Kinds.String;
                    break;
                case ConditionOperator.Contains:
                    kinds &= operand.Kind == ConstantKind.String ? Kinds.String | Kinds.Array : Kinds.Array;
                    break;
            }
        }

        if (mustExist && mustBeMissing) return false;
        if (mustBeMissing) return true;
        if (kinds == Kinds.None) return false;
        if (low > high || (low == high && (lowOpen || highOpen))) return false;
        if (allowed is not null)
        {
            allowed.RemoveAll(item => excluded.Contains(item) || (pinned is not null && !pinned.Equals(item)));
            if (allowed.Count == 0) return false;
        }
        if (pinned is not null)
        {
            if (excluded.Contains(pinned)) return false;
            if (pinned.Kind == ConstantKind.Number && !InRange(pinned.Number, low, lowOpen, high, highOpen)) return false;
            if (pinned.Kind == ConstantKind.String)
            {
                string text = pinned.String!;
                if (prefix is not null && !text.StartsWith(prefix, StringComparison.Ordinal)) return false;
                if (suffix is not null && !text.EndsWith(suffix, StringComparison.Ordinal)) return false;
                foreach (var test in tests)
                {
                    if (test.Operator == ConditionOperator.Glob && !PolicyPatterns.Matches(test.Operand.String!, text)) return false;
                    if (test.Operator == ConditionOperator.Contains && test.Operand.Kind == ConstantKind.String
                        && text.IndexOf(test.Operand.String!, StringComparison.Ordinal) < 0) return false;
                }
            }
        }
        return true;
    }

    private static bool InRange(double value, double low, bool lowOpen, double high, bool highOpen) =>
        (lowOpen ? value > low : value >= low) && (highOpen ? value < high : value <= high);

    // An entry decides nothing when every name it matches is hidden, or when a more specific pattern
    // matches every name it does. Covers() is a sufficient test, so these warnings are never false.
    private static void CheckSelection(PolicyDocument policy, PolicySpans spans, DiagnosticBag report)
    {
        foreach (var entry in policy.Tools)
        {
            if (entry.Name.Length == 0) continue;
            bool warned = false;
            foreach (var hide in policy.Hide)
            {
                if (PolicyPatterns.Covers(hide.Pattern, entry.Name))
                {
                    Report(report, spans, PolicyDiagnostics.EntryNeverSelected, entry.Pointer, entry.Name,
                        $"every tool it matches is hidden by {hide.Pointer} (\"{hide.Pattern}\")");
                    warned = true;
                    break;
                }
            }
            // '*' is never selected at all: it is the layer added to every call.
            if (warned || !entry.IsPattern || PolicyPatterns.IsLayer(entry.Name)) continue;
            foreach (var other in policy.Tools)
            {
                // The '*' layer is never selected, so it shadows no entry ('**' is still chosen).
                if (ReferenceEquals(other, entry) || !other.IsPattern || PolicyPatterns.IsLayer(other.Name)) continue;
                if (PolicyPatterns.CompareSpecificity(other.Name, entry.Name) < 0 && PolicyPatterns.Covers(other.Name, entry.Name))
                {
                    Report(report, spans, PolicyDiagnostics.EntryNeverSelected, entry.Pointer, entry.Name,
                        $"every tool it matches selects the more specific entry '{other.Name}'");
                    break;
                }
            }
        }
    }
}
