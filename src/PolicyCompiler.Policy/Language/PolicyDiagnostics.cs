using System;
using System.Collections.Generic;
using System.Globalization;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// A kind of policy diagnostic: a fixed id, severity and message format. Ids are never reused and
/// the severity of an id never changes (docs/diagnostics.md documents each one with an example).
/// </summary>
/// <param name="Id">The stable id, <c>PC0001</c>...</param>
/// <param name="Severity">Error or warning, fixed for the id.</param>
/// <param name="Title">A short title (the generator's descriptor title, the docs' table).</param>
/// <param name="MessageFormat">The message, with <see cref="string.Format(IFormatProvider, string, object[])"/> placeholders.</param>
public sealed record PolicyDiagnosticDescriptor(string Id, PolicyDiagnosticSeverity Severity, string Title, string MessageFormat);

/// <summary>
/// The catalog of every policy diagnostic. Errors are PC0001–PC0099, warnings PC0100 and up, so a
/// reader can tell one from the other by the id alone.
/// </summary>
public static class PolicyDiagnostics
{
    private static PolicyDiagnosticDescriptor Error(string id, string title, string format) => new(id, PolicyDiagnosticSeverity.Error, title, format);
    private static PolicyDiagnosticDescriptor Warning(string id, string title, string format) => new(id, PolicyDiagnosticSeverity.Warning, title, format);

    /// <summary>PC0001: the file is not JSON.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidJson = Error("PC0001", "Invalid JSON", "invalid JSON: {0}");
    /// <summary>PC0002: a string holds bytes that are not UTF-8.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidUtf8 = Error("PC0002", "Invalid UTF-8", "the policy file is not valid UTF-8 here");
    /// <summary>PC0003: an object repeats a key.</summary>
    public static readonly PolicyDiagnosticDescriptor DuplicateKey = Error("PC0003", "Duplicate key", "duplicate key '{0}' (first written at line {1}, column {2}); JSON readers disagree on which copy wins, so a policy must not repeat a key");
    /// <summary>PC0004: a field the language does not define (usually a typo).</summary>
    public static readonly PolicyDiagnosticDescriptor UnknownField = Error("PC0004", "Unknown field", "unknown field '{0}' in {1}{2}");
    /// <summary>PC0005: a value of the wrong JSON type.</summary>
    public static readonly PolicyDiagnosticDescriptor WrongType = Error("PC0005", "Wrong type", "{0} must be {1}, not {2}");
    /// <summary>PC0006: a required field is absent.</summary>
    public static readonly PolicyDiagnosticDescriptor MissingField = Error("PC0006", "Missing field", "{0} needs the field '{1}'");
    /// <summary>PC0007: a language version this compiler does not read.</summary>
    public static readonly PolicyDiagnosticDescriptor UnsupportedVersion = Error("PC0007", "Unsupported version", "unsupported language version {0}; this compiler reads version \"1\"");
    /// <summary>PC0008: a value outside a field's fixed set of words.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidEnumValue = Error("PC0008", "Invalid value", "{0} is not a valid value for '{1}'; expected {2}{3}");
    /// <summary>PC0009: the policy name cannot name a class or a gateway.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidName = Error("PC0009", "Invalid policy name", "invalid policy name \"{0}\": use 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'");
    /// <summary>PC0011: an operator the language does not define.</summary>
    public static readonly PolicyDiagnosticDescriptor UnknownOperator = Error("PC0011", "Unknown operator", "unknown operator '{0}'{1}; operators are eq, neq, in, not_in, lt, lte, gt, gte, prefix, suffix, contains, regex, glob, exists");
    /// <summary>PC0012: an operand of the wrong kind for its operator.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidOperand = Error("PC0012", "Invalid operand", "operator '{0}' needs {1}, not {2}");
    /// <summary>PC0013: a regex that does not compile or cannot run in linear time.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidRegex = Error("PC0013", "Invalid regex", "invalid regex: {0}");
    /// <summary>PC0014: an empty tool name, pattern or glob.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidPattern = Error("PC0014", "Invalid pattern", "{0} must not be empty");
    /// <summary>PC0015: a value path that does not parse.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidPath = Error("PC0015", "Invalid path", "invalid path \"{0}\": {1}");
    /// <summary>PC0016: a window that is neither a unit nor a positive whole number of seconds.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidWindow = Error("PC0016", "Invalid window", "invalid window {0}: use \"second\", \"minute\", \"hour\", \"day\" or a whole number of seconds from 1 to 31622400");
    /// <summary>PC0017: a limit's max is not a positive number.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidMax = Error("PC0017", "Invalid max", "'max' must be a number greater than 0, not {0}");
    /// <summary>PC0018: a bad increment, or both increment forms.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidIncrement = Error("PC0018", "Invalid increment", "{0}");
    /// <summary>PC0019: one counter used with different window, align, scope or key.</summary>
    public static readonly PolicyDiagnosticDescriptor CounterConflict = Error("PC0019", "Conflicting counter", "counter '{0}' is used with a different {1} at {2}; limits sharing a counter must have the same window, align, scope and key");
    /// <summary>PC0020: more than 8 limits apply to one tool.</summary>
    public static readonly PolicyDiagnosticDescriptor TooManyLimits = Error("PC0020", "Too many limits", "{0} limits apply to tools matched by '{1}' (its own and those of '*'); at most 8 may apply to one tool");
    /// <summary>PC0021: a counter name outside the allowed characters.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidCounterName = Error("PC0021", "Invalid counter name", "invalid counter name \"{0}\": use 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', '-', ':'");
    /// <summary>PC0022: a path with no operator.</summary>
    public static readonly PolicyDiagnosticDescriptor NoOperator = Error("PC0022", "No operator", "path \"{0}\" has no operator; write e.g. {{ \"eq\": ... }}");
    /// <summary>PC0023: a limit path that does not name an argument.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidLimitPath = Error("PC0023", "Invalid limit path", "'{0}' must name a value inside the arguments (args.NAME...), not \"{1}\"");
    /// <summary>PC0024: <c>action</c>, <c>reason</c> or <c>hide</c> on the <c>*</c> entry, which is a layer and never decides a tool by itself.</summary>
    public static readonly PolicyDiagnosticDescriptor FieldOnLayer = Error("PC0024", "Field not allowed on '*'", "'{0}' is not allowed on the '*' entry: '*' only adds its rules and limits to every tool and never decides a tool by itself; {1}");

    /// <summary>PC0025: a <c>pin</c> that is not <c>sha256:</c> and 64 lower-case hex digits, or on a pattern entry.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidPin = Error("PC0025", "Invalid pin", "invalid pin: {0}");
    /// <summary>PC0026: an approval timeout that is not a duration from 1 second to 1 day.</summary>
    public static readonly PolicyDiagnosticDescriptor InvalidApprovalTimeout = Error("PC0026", "Invalid approval timeout", "invalid approval timeout {0}: use \"second\", \"minute\", \"hour\", \"day\", a whole number of seconds, or a whole number with s, m or h (e.g. \"90s\", \"5m\", \"1h\"), from 1 second to 1 day");

    /// <summary>PC0100: a rule after an unconditional rule.</summary>
    public static readonly PolicyDiagnosticDescriptor UnreachableRule = Warning("PC0100", "Unreachable rule", "this rule is never reached: the rule at {0} has no condition and decides every call first");
    /// <summary>PC0101: a condition that can never be true.</summary>
    public static readonly PolicyDiagnosticDescriptor ConditionNeverTrue = Warning("PC0101", "Condition never true", "this condition can never be true: {0}");
    /// <summary>PC0102: an entry that never decides a call.</summary>
    public static readonly PolicyDiagnosticDescriptor EntryNeverSelected = Warning("PC0102", "Entry never used", "the entry '{0}' never decides a call: {1}");
    /// <summary>PC0103: a tool name the MCP specification advises against.</summary>
    public static readonly PolicyDiagnosticDescriptor UnusualToolName = Warning("PC0103", "Unusual tool name", "tool name '{0}' is outside the MCP tool-name syntax (1 to 128 characters of A-Z, a-z, 0-9, '_', '.', '-'); no server should expose it");
    /// <summary>PC0104: a limit whose increment alone exceeds its max.</summary>
    public static readonly PolicyDiagnosticDescriptor LimitAdmitsNothing = Warning("PC0104", "Limit admits nothing", "this limit refuses every call: one call adds {0}, more than 'max' {1}");

    /// <summary>
    /// Ids that were used once and are never reused. PC0010 marked fields reserved for a later version
    /// (<c>approval</c> was the only one, now read); PC0105 warned about a <c>*</c> entry without
    /// <c>action</c>, when <c>*</c> could decide tools; <c>*</c> is now a layer only (PC0024).
    /// </summary>
    public static IReadOnlyList<string> RetiredIds { get; } = new[] { "PC0010", "PC0105" };

    /// <summary>Every descriptor, in id order (for docs and tests).</summary>
    public static IReadOnlyList<PolicyDiagnosticDescriptor> All { get; } = new[]
    {
        InvalidJson, InvalidUtf8, DuplicateKey, UnknownField, WrongType, MissingField, UnsupportedVersion,
        InvalidEnumValue, InvalidName, UnknownOperator, InvalidOperand, InvalidRegex,
        InvalidPattern, InvalidPath, InvalidWindow, InvalidMax, InvalidIncrement, CounterConflict,
        TooManyLimits, InvalidCounterName, NoOperator, InvalidLimitPath, FieldOnLayer, InvalidPin, InvalidApprovalTimeout,
        UnreachableRule, ConditionNeverTrue, EntryNeverSelected, UnusualToolName, LimitAdmitsNothing,
    };
}

/// <summary>Collects diagnostics for one file, turning byte spans into lines and columns.</summary>
internal sealed class DiagnosticBag
{
    private readonly string _filePath;
    private readonly PolicySourceText _source;
    private readonly List<PolicyDiagnostic> _items = new();

    public DiagnosticBag(string filePath, PolicySourceText source)
    {
        _filePath = filePath;
        _source = source;
    }

    public bool HasErrors { get; private set; }

    /// <summary>The line and column of a byte offset.</summary>
    public SourcePosition Position(int offset) => _source.GetPosition(offset);

    public void Add(PolicyDiagnosticDescriptor descriptor, int offset, int length, params object[] args)
    {
        var position = _source.GetPosition(offset);
        string message = args.Length == 0 ? descriptor.MessageFormat : string.Format(CultureInfo.InvariantCulture, descriptor.MessageFormat, args);
        _items.Add(new PolicyDiagnostic(descriptor.Id, descriptor.Severity, message, _filePath, position.Line, position.Column, offset, Math.Max(1, length)));
        if (descriptor.Severity == PolicyDiagnosticSeverity.Error) HasErrors = true;
    }

    /// <summary>Reports at a node's first token.</summary>
    public void Add(PolicyDiagnosticDescriptor descriptor, JsonNode node, params object[] args) =>
        Add(descriptor, node.Offset, node.Length, args);

    /// <summary>Reports at a property's key.</summary>
    public void AddAtKey(PolicyDiagnosticDescriptor descriptor, JsonProperty property, params object[] args) =>
        Add(descriptor, property.NameOffset, property.NameLength, args);

    public void AddDuplicate(JsonProperty duplicate, JsonProperty first)
    {
        var firstPosition = _source.GetPosition(first.NameOffset);
        AddAtKey(PolicyDiagnostics.DuplicateKey, duplicate, duplicate.Name, firstPosition.Line, firstPosition.Column);
    }

    /// <summary>The diagnostics in file order (then by id), so output is stable.</summary>
    public EquatableArray<PolicyDiagnostic> ToSortedArray()
    {
        var items = _items.ToArray();
        // A stable sort: equal positions keep the order they were found in.
        var indexed = new KeyValuePair<int, PolicyDiagnostic>[items.Length];
        for (int i = 0; i < items.Length; i++) indexed[i] = new KeyValuePair<int, PolicyDiagnostic>(i, items[i]);
        Array.Sort(indexed, (a, b) =>
        {
            int c = a.Value.Offset.CompareTo(b.Value.Offset);
            if (c == 0) c = string.CompareOrdinal(a.Value.Id, b.Value.Id);
            return c != 0 ? c : a.Key.CompareTo(b.Key);
        });
        for (int i = 0; i < items.Length; i++) items[i] = indexed[i].Value;
        return new EquatableArray<PolicyDiagnostic>(items);
    }
}
