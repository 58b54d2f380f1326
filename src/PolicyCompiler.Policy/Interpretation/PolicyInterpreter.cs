using System.Buffers;
using System.Text;
using System.Text.Unicode;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Interpretation;

/// <summary>
/// The reference evaluator: walks the policy model for every call, exactly as
/// docs/policy-language.md "Deciding a call" says. The compiled evaluators must agree with it on
/// every decision, rule pointer, reason and counter effect.
/// </summary>
/// <remarks>
/// The model is prepared once (paths to UTF-8 steps, operands to UTF-8, regexes and globs compiled,
/// patterns sorted by specificity); after that the interpreter is immutable, so it is thread-safe,
/// and counters are exact because the <see cref="ICounterStore"/> is.
/// Two operations beyond the decision itself, defined here so both evaluators agree:
/// <list type="bullet">
/// <item><see cref="ReserveLimits"/> decides as <see cref="Evaluate"/> does, except that an outcome
/// of approval_required goes on to the limits as an allow would (same rule pointer).</item>
/// <item><see cref="IsListed"/>: false when the tool is hidden; otherwise walk
/// <c>W.rules ++ E.rules</c> in order (only <c>W.rules</c> when no entry matches): an unconditional
/// rule decides (listed iff it is not deny), a conditional allow or approve rule makes the tool
/// listed; after the rules, listed iff the entry's action (or the default, when no entry matches)
/// is not deny.</item>
/// </list>
/// </remarks>
public sealed class PolicyInterpreter : IPolicyEvaluator
{
    private const string DefaultPointer = "/default";

    private readonly PolicyDocument _policy;
    private readonly TimeProvider _time;
    private readonly ICounterStore _counters;
    private readonly (GlobPattern Pattern, string Pointer)[] _hide;
    private readonly Dictionary<string, Entry> _exact;
    private readonly Dictionary<string, Entry>.AlternateLookup<ReadOnlySpan<char>> _exactBySpan;
    private readonly Entry[] _patterns; // most specific first; never the '*' layer
    private readonly Entry? _layer;     // the '*' entry W: never selected, its rules and limits apply to every call

    /// <summary>Creates an interpreter for a validated policy.</summary>
    public PolicyInterpreter(PolicyDocument policy, PolicyEvaluatorOptions? options = null)
    {
        options ??= new PolicyEvaluatorOptions();
        _policy = policy;
        _time = options.Time;
        _counters = options.Counters;
        Policy = new PolicyInfo(policy.Name, policy.Sha256, policy.Mode, policy.SourceText) { Pins = PinsOf(policy), ApprovalTimeouts = ApprovalTimeoutsOf(policy) };

        _hide = new (GlobPattern, string)[policy.Hide.Count];
        for (int i = 0; i < _hide.Length; i++) _hide[i] = (new GlobPattern(policy.Hide[i].Pattern), policy.Hide[i].Pointer);

        _exact = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var patterns = new List<Entry>();
        foreach (var tool in policy.Tools)
        {
            var entry = new Entry(tool, options.RegexTimeout);
            if (PolicyPatterns.IsLayer(tool.Name)) _layer = entry;
            else if (tool.IsPattern) patterns.Add(entry);
            else _exact[tool.Name] = entry;
        }
        patterns.Sort(static (a, b) => PolicyPatterns.CompareSpecificity(a.Model.Name, b.Model.Name));
        _patterns = patterns.ToArray();
        _exactBySpan = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <inheritdoc/>
    public PolicyInfo Policy { get; }

    /// <inheritdoc/>
    public Decision Evaluate(in ToolCall call) => Decide(call, approvalGoesToLimits: false, trace: null);

    /// <inheritdoc/>
    public Decision ReserveLimits(in ToolCall call) => Decide(call, approvalGoesToLimits: true, trace: null);

    /// <summary>
    /// Decides <paramref name="call"/> as <see cref="Evaluate"/> would and records every step. Any
    /// counters the decision reserved are refunded at once: explaining a call never uses up a limit.
    /// </summary>
    public PolicyExplanation Explain(in ToolCall call)
    {
        var trace = new List<TraceStep>();
        Decision decision = Decide(call, approvalGoesToLimits: false, trace);
        decision.Reservation.Rollback();
        return new PolicyExplanation(decision, trace);
    }

    /// <inheritdoc/>
    public bool IsListed(ReadOnlySpan<byte> toolNameUtf8)
    {
        if (HiddenBy(toolNameUtf8) >= 0) return false;
        Entry? entry = Select(toolNameUtf8);
        if (entry is not null && entry.Model.Hidden) return false;
        if (_layer is not null && RulesDecideListing(_layer.Rules, out bool listed)) return listed;
        if (entry is not null && RulesDecideListing(entry.Rules, out listed)) return listed;
        ToolAction final = entry?.Model.Action ?? (_policy.Default == DefaultAction.Allow ? ToolAction.Allow : ToolAction.Deny);
        return final != ToolAction.Deny;
    }

    /// <summary>The pin of every exact-name entry that has one (the reader allows pins on exact names only).</summary>
    private static Dictionary<string, string> PinsOf(PolicyDocument policy)
    {
        var pins = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tool in policy.Tools)
        {
            if (tool.Pin is not null && !tool.IsPattern) pins[tool.Name] = tool.Pin;
        }
        return pins;
    }

    /// <summary>Entry pointer → <c>approval.timeout</c> seconds, and "" (the document's pointer) → the top-level one.</summary>
    private static Dictionary<string, long> ApprovalTimeoutsOf(PolicyDocument policy)
    {
        var timeouts = new Dictionary<string, long>(StringComparer.Ordinal);
        if (policy.ApprovalTimeoutSeconds is { } fallback) timeouts[""] = fallback;
        foreach (var tool in policy.Tools)
        {
            if (tool.ApprovalTimeoutSeconds is { } seconds) timeouts[tool.Pointer] = seconds;
        }
        return timeouts;
    }

    private static bool RulesDecideListing(Rule[] rules, out bool listed)
    {
        foreach (var rule in rules)
        {
            if (rule.Model.When is null || rule.Model.Action != ToolAction.Deny)
            {
                // An unconditional rule always decides; a conditional allow/approve might.
                listed = rule.Model.Action != ToolAction.Deny;
                return true;
            }
        }
        listed = false;
        return false;
    }

    private Decision Decide(in ToolCall call, bool approvalGoesToLimits, List<TraceStep>? trace)
    {
        // 1. Hidden by the top-level list.
        int hidden = HiddenBy(call.NameUtf8);
        if (hidden >= 0)
        {
            trace?.Add(new TraceStep(_hide[hidden].Pointer, $"tool matches hide pattern '{_hide[hidden].Pattern.Pattern}'"));
            return Decision.Deny(_hide[hidden].Pointer, PolicyText.HiddenReason);
        }
        trace?.Add(new TraceStep("", _hide.Length == 0 ? "no hide list" : "tool matches no hide pattern"));

        // 2. Select the entry E (never the '*' layer; none when no entry matches).
        Entry? entry = Select(call.NameUtf8);
        if (trace is not null) TraceSelection(call.NameUtf8, entry, trace);
        if (entry is not null && entry.Model.Hidden)
        {
            trace?.Add(new TraceStep(entry.HidePointer, "entry hides the tool"));
            return Decision.Deny(entry.HidePointer, PolicyText.HiddenReason);
        }

        // 3. The '*' layer W applies to every call, whether an entry matched or not.
        Entry? layer = _layer;
        if (layer is not null) trace?.Add(new TraceStep(layer.Model.Pointer, "the '*' layer adds its rules (first) and limits"));

        // 4. Rules, first match wins, over W.rules ++ E.rules.
        Rule? fired = layer is null ? null : FirstFiring(layer.Rules, call, trace);
        Entry? owner = fired is null ? entry : layer; // whose rule or action decides (null: the default)
        if (fired is null && entry is not null) fired = FirstFiring(entry.Rules, call, trace);

        string pointer;
        ToolAction action;
        string? reason;
        if (fired is not null)
        {
            pointer = fired.Model.Pointer;
            action = fired.Model.Action;
            reason = fired.Model.Reason;
        }
        else if (entry is not null)
        {
            // 5. No rule fired: the entry's action decides.
            pointer = entry.ActionPointer;
            action = entry.Model.Action;
            reason = entry.Model.Reason;
            trace?.Add(new TraceStep(pointer, $"no rule fired; entry action is {Name(action)}"));
        }
        else
        {
            // 5. No rule fired and no entry matches: the default decides.
            pointer = DefaultPointer;
            action = _policy.Default == DefaultAction.Allow ? ToolAction.Allow : ToolAction.Deny;
            reason = _policy.DefaultReason;
            trace?.Add(new TraceStep(pointer, $"{(layer is null ? "" : "no rule fired; ")}default is {Name(action)}"));
        }

        switch (action)
        {
            case ToolAction.Deny:
                return Decision.Deny(pointer, reason ?? FallbackReason(owner!, action));
            case ToolAction.Approve when !approvalGoesToLimits:
                return Decision.ApprovalRequired(pointer, reason ?? FallbackReason(owner!, action));
            default:
                // 6. Limits.
                return Admit(call, pointer, layer, entry, trace);
        }
    }

    // The parser resolves every deny and approve reason into the model; this serves hand-made models.
    private static string FallbackReason(Entry owner, ToolAction action) => PolicyPatterns.IsLayer(owner.Model.Name)
        ? (action == ToolAction.Deny ? PolicyText.LayerDenyReason : PolicyText.LayerApproveReason)
        : (action == ToolAction.Deny ? PolicyText.DenyReason(owner.Model.Name) : PolicyText.ApproveReason(owner.Model.Name));

    private Rule? FirstFiring(Rule[] rules, in ToolCall call, List<TraceStep>? trace)
    {
        foreach (var rule in rules)
        {
            Truth truth = rule.When is null ? Truth.True : rule.When.Evaluate(call, trace);
            bool fires = PolicyOps.Fires(truth, rule.Model.Action);
            trace?.Add(new TraceStep(rule.Model.Pointer,
                $"{Name(rule.Model.Action)} rule: condition {Name(truth)} → {(fires ? "fires" : "does not fire")}"));
            if (fires) return rule;
        }
        return null;
    }

    private Decision Admit(in ToolCall call, string pointer, Entry? layer, Entry? entry, List<TraceStep>? trace)
    {
        int count = (layer?.Limits.Length ?? 0) + (entry?.Limits.Length ?? 0);
        if (count == 0)
        {
            trace?.Add(new TraceStep(pointer, "allowed; no limits apply"));
            return Decision.Allow(pointer);
        }

        CounterRequest[] requests = ArrayPool<CounterRequest>.Shared.Rent(count);
        try
        {
            int n = 0;
            for (int pass = 0; pass < 2; pass++)
            {
                Entry? source = pass == 0 ? layer : entry;
                if (source is null) continue;
                foreach (var limit in source.Limits)
                {
                    if (!limit.TryBuildRequest(call, out requests[n]))
                    {
                        trace?.Add(new TraceStep(limit.Model.Pointer, limit.InvalidIncrementReason));
                        return Decision.Deny(limit.Model.Pointer, limit.InvalidIncrementReason);
                    }
                    n++;
                }
            }

            DateTimeOffset now = _time.GetUtcNow();
            if (_counters.TryReserve(requests.AsSpan(0, n), now, out var reservation, out int refused, out var retryAfter))
            {
                if (trace is not null)
                {
                    for (int i = 0; i < n; i++) trace.Add(new TraceStep(LimitAt(layer, entry, i).Model.Pointer, DescribeRequest(requests[i]) + " → admitted"));
                    trace.Add(new TraceStep(pointer, "allowed"));
                }
                return Decision.Allow(pointer, reservation);
            }

            Limit refusing = LimitAt(layer, entry, refused);
            trace?.Add(new TraceStep(refusing.Model.Pointer,
                $"{DescribeRequest(requests[refused])} → refused, retry after {(retryAfter == TimeSpan.MaxValue ? "never" : retryAfter.ToString())}"));
            return Decision.RateLimited(refusing.Model.Pointer, refusing.Model.Reason, refusing.Model.Counter, retryAfter);
        }
        finally
        {
            ArrayPool<CounterRequest>.Shared.Return(requests, clearArray: true);
        }
    }

    private static Limit LimitAt(Entry? layer, Entry? entry, int index)
    {
        int layerCount = layer?.Limits.Length ?? 0;
        return index < layerCount ? layer!.Limits[index] : entry!.Limits[index - layerCount];
    }

    private static string DescribeRequest(in CounterRequest request) =>
        $"counter '{request.Counter}' (scope '{request.ScopeKey}'{(request.ArgumentKey is null ? "" : $", key '{request.ArgumentKey}'")}) adds {PolicyText.FormatNumber(request.Amount)} of max {PolicyText.FormatNumber(request.Max)} per {PolicyText.FormatWindow(request.WindowSeconds)}";

    private int HiddenBy(ReadOnlySpan<byte> nameUtf8)
    {
        for (int i = 0; i < _hide.Length; i++)
        {
            if (_hide[i].Pattern.IsMatch(nameUtf8)) return i;
        }
        return -1;
    }

    private Entry? Select(ReadOnlySpan<byte> nameUtf8)
    {
        if (_exact.Count > 0)
        {
            char[]? rented = null;
            Span<char> buffer = nameUtf8.Length <= 256 ? stackalloc char[256] : (rented = ArrayPool<char>.Shared.Rent(nameUtf8.Length));
            try
            {
                // Invalid UTF-8 cannot equal a (valid) policy key, so such a name matches no exact entry.
                if (Utf8.ToUtf16(nameUtf8, buffer, out _, out int written, replaceInvalidSequences: false) == OperationStatus.Done
                    && _exactBySpan.TryGetValue(buffer[..written], out var exact))
                {
                    return exact;
                }
            }
            finally
            {
                if (rented is not null) ArrayPool<char>.Shared.Return(rented);
            }
        }
        foreach (var pattern in _patterns)
        {
            if (pattern.Glob!.IsMatch(nameUtf8)) return pattern;
        }
        return null;
    }

    private void TraceSelection(ReadOnlySpan<byte> nameUtf8, Entry? selected, List<TraceStep> trace)
    {
        if (selected is null)
        {
            trace.Add(new TraceStep("", "no entry matches the tool"));
            return;
        }
        if (!selected.Model.IsPattern)
        {
            trace.Add(new TraceStep(selected.Model.Pointer, "entry names the tool exactly"));
            return;
        }
        var others = new StringBuilder();
        foreach (var pattern in _patterns)
        {
            if (!ReferenceEquals(pattern, selected) && pattern.Glob!.IsMatch(nameUtf8))
            {
                others.Append(others.Length == 0 ? "" : ", ").Append('\'').Append(pattern.Model.Name).Append('\'');
            }
        }
        trace.Add(new TraceStep(selected.Model.Pointer, others.Length == 0
            ? $"pattern '{selected.Model.Name}' matches the tool"
            : $"pattern '{selected.Model.Name}' is the most specific match (also matching: {others})"));
    }

    private static string Name(ToolAction action) => action switch
    {
        ToolAction.Deny => "deny",
        ToolAction.Approve => "approve",
        _ => "allow",
    };

    private static string Name(Truth truth) => truth switch
    {
        Truth.True => "true",
        Truth.False => "false",
        _ => "unknown",
    };

    /// <summary>A tool entry, prepared.</summary>
    private sealed class Entry
    {
        public Entry(ToolEntry model, TimeSpan regexTimeout)
        {
            Model = model;
            Glob = model.IsPattern ? new GlobPattern(model.Name) : null;
            ActionPointer = model.ActionIsExplicit ? model.Pointer + "/action" : model.Pointer;
            HidePointer = model.Pointer + "/hide";
            Rules = new Rule[model.Rules.Count];
            for (int i = 0; i < Rules.Length; i++) Rules[i] = new Rule(model.Rules[i], regexTimeout);
            Limits = new Limit[model.Limits.Count];
            for (int i = 0; i < Limits.Length; i++) Limits[i] = new Limit(model.Limits[i]);
        }

        public ToolEntry Model { get; }
        public GlobPattern? Glob { get; }
        public string ActionPointer { get; }
        public string HidePointer { get; }
        public Rule[] Rules { get; }
        public Limit[] Limits { get; }
    }

    /// <summary>A rule, prepared.</summary>
    private sealed class Rule(PolicyRule model, TimeSpan regexTimeout)
    {
        public PolicyRule Model { get; } = model;
        public CompiledCondition? When { get; } = model.When is null ? null : CompiledCondition.Compile(model.When, regexTimeout);
    }

    /// <summary>A limit, prepared.</summary>
    private sealed class Limit
    {
        private readonly ArgumentPath? _key;
        private readonly ArgumentPath? _incrementFrom;

        public Limit(PolicyLimit model)
        {
            Model = model;
            _key = model.Key is null ? null : CompiledCondition.ToArgumentPath(model.Key);
            _incrementFrom = model.IncrementFrom is null ? null : CompiledCondition.ToArgumentPath(model.IncrementFrom);
            InvalidIncrementReason = PolicyText.InvalidIncrementReason(model);
        }

        public PolicyLimit Model { get; }
        public string InvalidIncrementReason { get; }

        /// <summary>False when <c>increment_from</c> is not a non-negative number (the call is then denied).</summary>
        public bool TryBuildRequest(in ToolCall call, out CounterRequest request)
        {
            double amount = Model.Increment;
            if (_incrementFrom is not null)
            {
                if (!LimitArguments.TryGetAmount(ArgumentLookup.Find(call.ArgumentsJson, _incrementFrom), out amount))
                {
                    request = default;
                    return false;
                }
            }
            string scope = Model.Scope switch
            {
                LimitScope.Grant => call.Grant,
                LimitScope.Session => call.Session,
                _ => "",
            };
            string? key = _key is null ? null : LimitArguments.KeyText(ArgumentLookup.Find(call.ArgumentsJson, _key));
            request = new CounterRequest(Model.Counter, Model.Window.Seconds, Model.Window.Alignment, scope, key, amount, Model.Max);
            return true;
        }
    }
}
