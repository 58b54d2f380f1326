using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Turns the JSON tree into the model: checks every field, type, enumerated word, path, operator
/// and operand, resolves every text an evaluator shows (reasons), and records where each part came
/// from (<see cref="PolicySpans"/>) for the validator. Reports and skips what is wrong, so a single
/// run finds as many problems as possible.
/// </summary>
internal sealed class PolicyModelReader
{
    private static readonly string[] DocumentFields = { "$schema", "version", "name", "description", "default", "default_reason", "mode", "approval", "hide", "tools" };
    private static readonly string[] EntryFields = { "action", "reason", "hide", "rules", "limits", "pin", "approval" };
    private static readonly string[] ApprovalFields = { "timeout" };
    private static readonly string[] RuleFields = { "when", "action", "reason" };
    private static readonly string[] LimitFields = { "counter", "window", "max", "scope", "key", "increment", "increment_from", "align", "reason" };
    private static readonly string[] OperatorNames = { "eq", "neq", "in", "not_in", "lt", "lte", "gt", "gte", "prefix", "suffix", "contains", "regex", "glob", "exists" };

    // Spellings seen in other policy languages, mapped to ours for the "did you mean" hint.
    private static readonly Dictionary<string, string> OperatorAliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["equals"] = "eq", ["equal"] = "eq", ["=="] = "eq", ["="] = "eq", ["is"] = "eq",
        ["ne"] = "neq", ["not_eq"] = "neq", ["!="] = "neq", ["not_equals"] = "neq",
        ["nin"] = "not_in", ["notin"] = "not_in", ["not-in"] = "not_in", ["one_of"] = "in", ["oneof"] = "in",
        ["le"] = "lte", ["<="] = "lte", ["ge"] = "gte", [">="] = "gte", ["<"] = "lt", [">"] = "gt",
        ["starts_with"] = "prefix", ["startswith"] = "prefix", ["ends_with"] = "suffix", ["endswith"] = "suffix",
        ["matches"] = "regex", ["match"] = "regex", ["pattern"] = "regex", ["like"] = "glob", ["wildcard"] = "glob",
        ["has"] = "contains", ["includes"] = "contains", ["present"] = "exists", ["defined"] = "exists",
    };

    private readonly DiagnosticBag _report;
    private readonly PolicySpans _spans;

    public PolicyModelReader(DiagnosticBag report, PolicySpans spans)
    {
        _report = report;
        _spans = spans;
    }

    /// <summary>Whether <paramref name="c"/> may appear in a policy name or tool name.</summary>
    public static bool IsNameChar(char c) =>
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

    public PolicyDocument? ReadDocument(JsonNode root, string defaultName, string sha256, string text)
    {
        if (root.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, root, "the policy", "an object", root.Describe());
            return null;
        }
        CheckFields(root, "the policy", DocumentFields);

        string version = "1";
        var versionProperty = root.Find("version");
        if (versionProperty is null)
        {
            _report.Add(PolicyDiagnostics.MissingField, root, "the policy", "version");
        }
        else if (versionProperty.Value.Kind != JsonNodeKind.String)
        {
            _report.Add(PolicyDiagnostics.UnsupportedVersion, versionProperty.Value, versionProperty.Value.Display() + " (the version is the string \"1\")");
        }
        else if (versionProperty.Value.String != "1")
        {
            _report.Add(PolicyDiagnostics.UnsupportedVersion, versionProperty.Value, versionProperty.Value.Display());
        }

        string name = defaultName;
        var nameProperty = root.Find("name");
        if (nameProperty is not null && ReadString(nameProperty, "'name'") is string written)
        {
            if (IsValidName(written, 64, allowColon: false)) name = written;
            else _report.Add(PolicyDiagnostics.InvalidName, nameProperty.Value, written);
        }

        string? description = ReadOptionalString(root, "description");
        ReadOptionalString(root, "$schema");
        var defaultAction = ReadEnum(root, "default", DefaultAction.Deny, new[] { ("deny", DefaultAction.Deny), ("allow", DefaultAction.Allow) });
        string defaultReason = ReadOptionalString(root, "default_reason") ?? PolicyText.DefaultDenyReason;
        var mode = ReadEnum(root, "mode", PolicyMode.Enforce, new[] { ("enforce", PolicyMode.Enforce), ("shadow", PolicyMode.Shadow) });
        long? approvalTimeout = root.Find("approval") is { } approvalProperty ? ReadApproval(approvalProperty, "") : null;

        var hide = new List<HidePattern>();
        if (root.Find("hide") is { } hideProperty)
        {
            _spans.Add("/hide", hideProperty);
            if (hideProperty.Value.Kind != JsonNodeKind.Array)
            {
                _report.Add(PolicyDiagnostics.WrongType, hideProperty.Value, "'hide'", "an array of tool names or patterns", hideProperty.Value.Describe());
            }
            else
            {
                for (int i = 0; i < hideProperty.Value.Items.Count; i++)
                {
                    var item = hideProperty.Value.Items[i];
                    string pointer = "/hide/" + i;
                    _spans.Add(pointer, item);
                    if (item.Kind != JsonNodeKind.String)
                    {
                        _report.Add(PolicyDiagnostics.WrongType, item, "an item of 'hide'", "a string", item.Describe());
                    }
                    else if (item.String!.Length == 0)
                    {
                        _report.Add(PolicyDiagnostics.InvalidPattern, item, "a tool name or pattern in 'hide'");
                    }
                    else
                    {
                        hide.Add(new HidePattern(item.String, pointer));
                    }
                }
            }
        }

        var tools = new List<ToolEntry>();
        if (root.Find("tools") is { } toolsProperty)
        {
            _spans.Add("/tools", toolsProperty);
            if (toolsProperty.Value.Kind != JsonNodeKind.Object)
            {
                _report.Add(PolicyDiagnostics.WrongType, toolsProperty.Value, "'tools'", "an object keyed by tool name or pattern", toolsProperty.Value.Describe());
            }
            else
            {
                foreach (var entryProperty in toolsProperty.Value.Properties)
                {
                    if (ReadEntry(entryProperty) is { } entry) tools.Add(entry);
                }
            }
        }

        return new PolicyDocument(
            version,
            name,
            description,
            defaultAction,
            defaultReason,
            mode,
            new EquatableArray<HidePattern>(hide.ToArray()),
            new EquatableArray<ToolEntry>(tools.ToArray()),
            sha256,
            text,
            approvalTimeout);
    }

    /// <summary>
    /// <c>"approval": { "timeout": DURATION }</c> (docs/approvals.md): how long a held call waits for an
    /// answer. A duration is a window word (<c>second</c>, <c>minute</c>, <c>hour</c>, <c>day</c>), a whole
    /// number of seconds, or a whole number with <c>s</c>, <c>m</c> or <c>h</c>; from 1 second to 1 day.
    /// </summary>
    private long? ReadApproval(JsonProperty property, string pointer)
    {
        _spans.Add(pointer + "/approval", property);
        var node = property.Value;
        if (node.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, node, "'approval'", "an object ({ \"timeout\": \"5m\" })", node.Describe());
            return null;
        }
        CheckFields(node, "'approval'", ApprovalFields);
        if (node.Find("timeout") is not { } timeoutProperty) return null;
        var value = timeoutProperty.Value;
        long seconds = value.Kind switch
        {
            JsonNodeKind.String => ParseDuration(value.String!),
            JsonNodeKind.Number when Math.Floor(value.Number) == value.Number && value.Number >= 1 && value.Number <= 86400 => (long)value.Number,
            _ => 0,
        };
        if (seconds is < 1 or > 86400)
        {
            if (value.Kind is JsonNodeKind.String or JsonNodeKind.Number) _report.Add(PolicyDiagnostics.InvalidApprovalTimeout, value, value.Display());
            else _report.Add(PolicyDiagnostics.WrongType, value, "'timeout'", "a string (\"5m\") or a number of seconds", value.Describe());
            return null;
        }
        return seconds;
    }

    /// <summary>A window word, or digits followed by s, m or h; 0 when neither.</summary>
    private static long ParseDuration(string text)
    {
        switch (text)
        {
            case "second": return 1;
            case "minute": return 60;
            case "hour": return 3600;
            case "day": return 86400;
        }
        if (text.Length < 2 || text.Length > 8) return 0;
        long unit = text[text.Length - 1] switch { 's' => 1, 'm' => 60, 'h' => 3600, _ => 0 };
        long number = 0;
        for (int i = 0; i < text.Length - 1; i++)
        {
            char c = text[i];
            if (c < '0' || c > '9') return 0;
            number = number * 10 + (c - '0');
        }
        return unit * number;
    }

    private ToolEntry? ReadEntry(JsonProperty property)
    {
        string key = property.Name;
        string pointer = PolicyPatterns.EntryPointer(key);
        _spans.Add(pointer, property);
        string what = $"tool entry '{key}'";
        if (key.Length == 0)
        {
            _report.AddAtKey(PolicyDiagnostics.InvalidPattern, property, "a tool name or pattern");
        }
        var node = property.Value;
        if (node.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, node, what, "an object", node.Describe());
            return null;
        }
        CheckFields(node, what, EntryFields);

        // '*' is a layer: it adds rules and limits to every call and never decides a tool itself,
        // so the fields that decide or hide a tool have no meaning there. Each says where it belongs.
        bool isLayer = PolicyPatterns.IsLayer(key);
        if (isLayer)
        {
            foreach (var (field, instead) in LayerOnlyFields)
            {
                if (node.Find(field) is { } misplaced) _report.AddAtKey(PolicyDiagnostics.FieldOnLayer, misplaced, field, instead);
            }
        }

        var actionProperty = node.Find("action");
        if (actionProperty is not null) _spans.Add(pointer + "/action", actionProperty);
        var action = ReadEnum(node, "action", ToolAction.Allow, ActionWords);
        string? writtenReason = ReadOptionalString(node, "reason");
        string? reason = action switch
        {
            ToolAction.Deny => writtenReason ?? PolicyText.DenyReason(key),
            ToolAction.Approve => writtenReason ?? PolicyText.ApproveReason(key),
            _ => writtenReason,
        };

        bool hidden = false;
        if (node.Find("hide") is { } hideProperty)
        {
            _spans.Add(pointer + "/hide", hideProperty);
            if (hideProperty.Value.Kind is JsonNodeKind.True or JsonNodeKind.False) hidden = hideProperty.Value.Kind == JsonNodeKind.True;
            else _report.Add(PolicyDiagnostics.WrongType, hideProperty.Value, "'hide' of a tool entry", "a boolean", hideProperty.Value.Describe());
        }

        string? pin = null;
        if (node.Find("pin") is { } pinProperty)
        {
            _spans.Add(pointer + "/pin", pinProperty);
            pin = ReadPin(pinProperty, key);
        }

        long? approvalTimeout = node.Find("approval") is { } approvalProperty ? ReadApproval(approvalProperty, pointer) : null;

        var rules = new List<PolicyRule>();
        if (node.Find("rules") is { } rulesProperty)
        {
            _spans.Add(pointer + "/rules", rulesProperty);
            if (rulesProperty.Value.Kind != JsonNodeKind.Array)
            {
                _report.Add(PolicyDiagnostics.WrongType, rulesProperty.Value, "'rules'", "an array of rules", rulesProperty.Value.Describe());
            }
            else
            {
                for (int i = 0; i < rulesProperty.Value.Items.Count; i++)
                {
                    if (ReadRule(rulesProperty.Value.Items[i], pointer + "/rules/" + i, key, isLayer ? null : writtenReason) is { } rule) rules.Add(rule);
                }
            }
        }

        var limits = new List<PolicyLimit>();
        if (node.Find("limits") is { } limitsProperty)
        {
            _spans.Add(pointer + "/limits", limitsProperty);
            if (limitsProperty.Value.Kind != JsonNodeKind.Array)
            {
                _report.Add(PolicyDiagnostics.WrongType, limitsProperty.Value, "'limits'", "an array of limits", limitsProperty.Value.Describe());
            }
            else
            {
                for (int i = 0; i < limitsProperty.Value.Items.Count; i++)
                {
                    if (ReadLimit(limitsProperty.Value.Items[i], pointer + "/limits/" + i) is { } limit) limits.Add(limit);
                }
            }
        }

        return new ToolEntry(
            key,
            PolicyPatterns.IsPattern(key),
            action,
            actionProperty is not null,
            reason,
            hidden,
            new EquatableArray<PolicyRule>(rules.ToArray()),
            new EquatableArray<PolicyLimit>(limits.ToArray()),
            pointer,
            PositionOf(property),
            pin,
            approvalTimeout);
    }

    /// <summary>
    /// <c>"pin": "sha256:&lt;64 lower-case hex digits&gt;"</c> (docs/scan.md, "Pinning"): the hash of one
    /// tool's definition, so only an exact tool name can carry it; a pattern matches many tools.
    /// </summary>
    private string? ReadPin(JsonProperty property, string key)
    {
        var value = property.Value;
        if (value.Kind != JsonNodeKind.String)
        {
            _report.Add(PolicyDiagnostics.WrongType, value, "'pin'", "a string (\"sha256:\" and 64 hex digits)", value.Describe());
            return null;
        }
        if (PolicyPatterns.IsPattern(key))
        {
            _report.AddAtKey(PolicyDiagnostics.InvalidPin, property, $"'{key}' is a pattern; a pin is the hash of one tool's definition, so only an entry keyed by an exact tool name can have one");
            return null;
        }
        string text = value.String!;
        bool wellFormed = text.Length == 71 && text.StartsWith("sha256:", StringComparison.Ordinal);
        for (int i = 7; wellFormed && i < text.Length; i++)
        {
            char c = text[i];
            wellFormed = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        }
        if (!wellFormed)
        {
            _report.Add(PolicyDiagnostics.InvalidPin, value, $"\"{text}\" is not \"sha256:\" followed by 64 lower-case hex digits (policyc scan --pin writes pins)");
            return null;
        }
        return text;
    }

    private SourcePosition PositionOf(JsonProperty property) => _report.Position(property.NameOffset);

    // The fields of an entry that the '*' layer must not write (PC0024), and what to write instead.
    private static readonly (string Field, string Instead)[] LayerOnlyFields =
    {
        ("action", "a tool no entry names is decided by the top-level 'default'"),
        ("reason", "the reason of a default deny is the top-level 'default_reason'; give each rule its own 'reason'"),
        ("hide", "hide tools with the top-level 'hide' list"),
    };

    private static readonly (string, ToolAction)[] ActionWords = { ("allow", ToolAction.Allow), ("deny", ToolAction.Deny), ("approve", ToolAction.Approve) };

    private PolicyRule? ReadRule(JsonNode node, string pointer, string entryKey, string? entryReason)
    {
        _spans.Add(pointer, node);
        if (node.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, node, "a rule", "an object", node.Describe());
            return null;
        }
        CheckFields(node, "a rule", RuleFields);

        Condition? when = null;
        if (node.Find("when") is { } whenProperty)
        {
            _spans.Add(pointer + "/when", whenProperty);
            when = ReadCondition(whenProperty.Value, pointer + "/when");
        }

        var actionProperty = node.Find("action");
        if (actionProperty is null) _report.Add(PolicyDiagnostics.MissingField, node, "a rule", "action");
        else _spans.Add(pointer + "/action", actionProperty);
        var action = ReadEnum(node, "action", ToolAction.Deny, ActionWords);
        string? writtenReason = ReadOptionalString(node, "reason");
        string? reason = action switch
        {
            ToolAction.Deny => writtenReason ?? entryReason ?? (PolicyPatterns.IsLayer(entryKey) ? PolicyText.LayerDenyReason : PolicyText.DenyReason(entryKey)),
            ToolAction.Approve => writtenReason ?? entryReason ?? (PolicyPatterns.IsLayer(entryKey) ? PolicyText.LayerApproveReason : PolicyText.ApproveReason(entryKey)),
            _ => null,
        };
        return new PolicyRule(when, action, reason, pointer);
    }

    private Condition? ReadCondition(JsonNode node, string pointer)
    {
        if (node.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, node, "a condition", "an object", node.Describe());
            return null;
        }
        bool valid = true;
        var parts = new List<Condition>();
        foreach (var property in node.Properties)
        {
            string partPointer = pointer + "/" + PolicyPatterns.EscapePointerToken(property.Name);
            _spans.Add(partPointer, property);
            switch (property.Name)
            {
                case "all":
                case "any":
                {
                    if (property.Value.Kind != JsonNodeKind.Array)
                    {
                        _report.Add(PolicyDiagnostics.WrongType, property.Value, $"'{property.Name}'", "an array of conditions", property.Value.Describe());
                        valid = false;
                        break;
                    }
                    var items = new List<Condition>();
                    for (int i = 0; i < property.Value.Items.Count; i++)
                    {
                        string itemPointer = partPointer + "/" + i;
                        _spans.Add(itemPointer, property.Value.Items[i]);
                        if (ReadCondition(property.Value.Items[i], itemPointer) is { } item) items.Add(item);
                        else valid = false;
                    }
                    var list = new EquatableArray<Condition>(items.ToArray());
                    parts.Add(property.Name == "all" ? new AllCondition(list, partPointer) : new AnyCondition(list, partPointer));
                    break;
                }
                case "not":
                {
                    if (ReadCondition(property.Value, partPointer) is { } inner) parts.Add(new NotCondition(inner, partPointer));
                    else valid = false;
                    break;
                }
                default:
                    if (!ReadTests(property, partPointer, parts)) valid = false;
                    break;
            }
        }
        if (!valid) return null;
        // One part stands for itself; several are an implicit AND at the object's pointer.
        return parts.Count == 1 ? parts[0] : new AllCondition(new EquatableArray<Condition>(parts.ToArray()), pointer);
    }

    private bool ReadTests(JsonProperty property, string pointer, List<Condition> parts)
    {
        if (!PolicyPaths.TryParse(property.Name, out var path, out string? error))
        {
            if (Array.IndexOf(OperatorNames, property.Name) >= 0)
            {
                error += $"; an operator goes inside a path: {{ \"args.NAME\": {{ \"{property.Name}\": ... }} }}";
            }
            else if (Suggest(property.Name, new[] { "all", "any", "not" }) is { } near)
            {
                error += $"; did you mean '{near}'?";
            }
            _report.AddAtKey(PolicyDiagnostics.InvalidPath, property, property.Name, error!);
            return false;
        }
        var node = property.Value;
        if (node.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, node, $"the tests of \"{property.Name}\"", "an object of operators such as { \"eq\": ... }", node.Describe());
            return false;
        }
        if (node.Properties.Count == 0)
        {
            _report.Add(PolicyDiagnostics.NoOperator, node, property.Name);
            return false;
        }
        bool valid = true;
        foreach (var op in node.Properties)
        {
            string opPointer = pointer + "/" + PolicyPatterns.EscapePointerToken(op.Name);
            _spans.Add(opPointer, op);
            if (ReadTest(path!, op, opPointer) is { } test) parts.Add(test);
            else valid = false;
        }
        return valid;
    }

    private TestCondition? ReadTest(ValuePath path, JsonProperty op, string pointer)
    {
        var value = op.Value;
        ConditionOperator kind;
        switch (op.Name)
        {
            case "eq": kind = ConditionOperator.Eq; break;
            case "neq": kind = ConditionOperator.Neq; break;
            case "in": kind = ConditionOperator.In; break;
            case "not_in": kind = ConditionOperator.NotIn; break;
            case "lt": kind = ConditionOperator.Lt; break;
            case "lte": kind = ConditionOperator.Lte; break;
            case "gt": kind = ConditionOperator.Gt; break;
            case "gte": kind = ConditionOperator.Gte; break;
            case "prefix": kind = ConditionOperator.Prefix; break;
            case "suffix": kind = ConditionOperator.Suffix; break;
            case "contains": kind = ConditionOperator.Contains; break;
            case "regex": kind = ConditionOperator.Regex; break;
            case "glob": kind = ConditionOperator.Glob; break;
            case "exists": kind = ConditionOperator.Exists; break;
            default:
            {
                string? near = OperatorAliases.TryGetValue(op.Name, out var alias) ? alias : Suggest(op.Name, OperatorNames);
                _report.AddAtKey(PolicyDiagnostics.UnknownOperator, op, op.Name, near is null ? "" : $" (did you mean '{near}'?)");
                return null;
            }
        }

        JsonConstant? operand;
        switch (kind)
        {
            case ConditionOperator.Eq:
            case ConditionOperator.Neq:
            case ConditionOperator.Contains:
                operand = Scalar(value);
                if (operand is null) return Invalid(op, "a string, number, boolean or null");
                break;
            case ConditionOperator.In:
            case ConditionOperator.NotIn:
            {
                if (value.Kind != JsonNodeKind.Array) return Invalid(op, "an array of strings, numbers, booleans or nulls");
                var items = new JsonConstant[value.Items.Count];
                for (int i = 0; i < items.Length; i++)
                {
                    var item = Scalar(value.Items[i]);
                    if (item is null)
                    {
                        _report.Add(PolicyDiagnostics.InvalidOperand, value.Items[i], op.Name, "an array of strings, numbers, booleans or nulls", "an array holding " + value.Items[i].Describe());
                        return null;
                    }
                    items[i] = item;
                }
                operand = new JsonConstant(ConstantKind.Array, null, 0, false, new EquatableArray<JsonConstant>(items));
                break;
            }
            case ConditionOperator.Lt:
            case ConditionOperator.Lte:
            case ConditionOperator.Gt:
            case ConditionOperator.Gte:
                if (value.Kind != JsonNodeKind.Number) return Invalid(op, "a number");
                operand = Scalar(value);
                break;
            case ConditionOperator.Exists:
                if (value.Kind is not (JsonNodeKind.True or JsonNodeKind.False)) return Invalid(op, "a boolean");
                operand = Scalar(value);
                break;
            case ConditionOperator.Regex:
                if (value.Kind != JsonNodeKind.String) return Invalid(op, "a string (a .NET regular expression)");
                if (RegexError(value.String!) is { } regexError)
                {
                    _report.Add(PolicyDiagnostics.InvalidRegex, value, regexError);
                    return null;
                }
                operand = Scalar(value);
                break;
            case ConditionOperator.Glob:
                if (value.Kind != JsonNodeKind.String) return Invalid(op, "a string (a glob with * and ?)");
                if (value.String!.Length == 0)
                {
                    _report.Add(PolicyDiagnostics.InvalidPattern, value, "a glob");
                    return null;
                }
                operand = Scalar(value);
                break;
            default:
                if (value.Kind != JsonNodeKind.String) return Invalid(op, "a string");
                operand = Scalar(value);
                break;
        }
        return new TestCondition(path, kind, operand!, pointer);
    }

    private TestCondition? Invalid(JsonProperty op, string expected)
    {
        _report.Add(PolicyDiagnostics.InvalidOperand, op.Value, op.Name, expected, op.Value.Describe());
        return null;
    }

    private static JsonConstant? Scalar(JsonNode node) => node.Kind switch
    {
        JsonNodeKind.String => new JsonConstant(ConstantKind.String, node.String, 0, false, EquatableArray<JsonConstant>.Empty),
        JsonNodeKind.Number => new JsonConstant(ConstantKind.Number, null, node.Number, false, EquatableArray<JsonConstant>.Empty),
        JsonNodeKind.True => new JsonConstant(ConstantKind.Boolean, null, 0, true, EquatableArray<JsonConstant>.Empty),
        JsonNodeKind.False => new JsonConstant(ConstantKind.Boolean, null, 0, false, EquatableArray<JsonConstant>.Empty),
        JsonNodeKind.Null => new JsonConstant(ConstantKind.Null, null, 0, false, EquatableArray<JsonConstant>.Empty),
        _ => null,
    };

    /// <summary>
    /// Null when <paramref name="pattern"/> compiles under the options evaluators use: NonBacktracking
    /// (linear time; an agent controls the input) and CultureInvariant. NonBacktracking is not in the
    /// netstandard2.0 API surface, but the generator runs on the .NET 10 compiler host, where the value
    /// 1024 means NonBacktracking, so one cast serves both builds.
    /// </summary>
    private static string? RegexError(string pattern)
    {
        const RegexOptions NonBacktracking = (RegexOptions)1024;
        try
        {
            _ = new Regex(pattern, NonBacktracking | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            return null;
        }
        catch (NotSupportedException e)
        {
            return "it needs backtracking (backreferences, lookarounds, atomic groups or conditionals), which policies do not allow: " + e.Message;
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
    }

    private PolicyLimit? ReadLimit(JsonNode node, string pointer)
    {
        _spans.Add(pointer, node);
        if (node.Kind != JsonNodeKind.Object)
        {
            _report.Add(PolicyDiagnostics.WrongType, node, "a limit", "an object", node.Describe());
            return null;
        }
        CheckFields(node, "a limit", LimitFields);
        foreach (var property in node.Properties) _spans.Add(pointer + "/" + PolicyPatterns.EscapePointerToken(property.Name), property);
        bool valid = true;

        string counter = "";
        var counterProperty = node.Find("counter");
        if (counterProperty is null)
        {
            _report.Add(PolicyDiagnostics.MissingField, node, "a limit", "counter");
            valid = false;
        }
        else if (ReadString(counterProperty, "'counter'") is not string name)
        {
            valid = false;
        }
        else if (!IsValidName(name, 128, allowColon: true))
        {
            _report.Add(PolicyDiagnostics.InvalidCounterName, counterProperty.Value, name);
            valid = false;
        }
        else
        {
            counter = name;
        }

        long seconds = 0;
        var windowProperty = node.Find("window");
        if (windowProperty is null)
        {
            _report.Add(PolicyDiagnostics.MissingField, node, "a limit", "window");
            valid = false;
        }
        else
        {
            var w = windowProperty.Value;
            seconds = w.Kind switch
            {
                JsonNodeKind.String => w.String switch { "second" => 1, "minute" => 60, "hour" => 3600, "day" => 86400, _ => 0 },
                JsonNodeKind.Number when w.Number >= 1 && w.Number <= 31622400 && Math.Floor(w.Number) == w.Number => (long)w.Number,
                _ => 0,
            };
            if (seconds == 0)
            {
                if (w.Kind is JsonNodeKind.String or JsonNodeKind.Number) _report.Add(PolicyDiagnostics.InvalidWindow, w, w.Display());
                else _report.Add(PolicyDiagnostics.WrongType, w, "'window'", "a string or a number of seconds", w.Describe());
                valid = false;
            }
        }

        double max = 0;
        var maxProperty = node.Find("max");
        if (maxProperty is null)
        {
            _report.Add(PolicyDiagnostics.MissingField, node, "a limit", "max");
            valid = false;
        }
        else if (maxProperty.Value.Kind != JsonNodeKind.Number)
        {
            _report.Add(PolicyDiagnostics.WrongType, maxProperty.Value, "'max'", "a number", maxProperty.Value.Describe());
            valid = false;
        }
        else if (maxProperty.Value.Number <= 0)
        {
            _report.Add(PolicyDiagnostics.InvalidMax, maxProperty.Value, maxProperty.Value.Display());
            valid = false;
        }
        else
        {
            max = maxProperty.Value.Number;
        }

        var scope = ReadEnum(node, "scope", LimitScope.Grant, new[] { ("grant", LimitScope.Grant), ("session", LimitScope.Session), ("global", LimitScope.Global) });
        var align = ReadEnum(node, "align", WindowAlignment.Sliding, new[] { ("sliding", WindowAlignment.Sliding), ("calendar", WindowAlignment.Calendar) });
        ValuePath? key = ReadLimitPath(node, "key", argumentsOnly: false, ref valid);
        ValuePath? incrementFrom = ReadLimitPath(node, "increment_from", argumentsOnly: true, ref valid);

        double increment = 1;
        if (node.Find("increment") is { } incrementProperty)
        {
            var v = incrementProperty.Value;
            if (v.Kind != JsonNodeKind.Number)
            {
                _report.Add(PolicyDiagnostics.WrongType, v, "'increment'", "a number", v.Describe());
                valid = false;
            }
            else if (v.Number <= 0)
            {
                _report.Add(PolicyDiagnostics.InvalidIncrement, v, $"'increment' must be a number greater than 0, not {v.Display()}");
                valid = false;
            }
            else if (node.Find("increment_from") is not null)
            {
                _report.AddAtKey(PolicyDiagnostics.InvalidIncrement, incrementProperty, "write either 'increment' or 'increment_from', not both");
                valid = false;
            }
            else
            {
                increment = v.Number;
            }
        }

        string? writtenReason = ReadOptionalString(node, "reason");
        if (!valid) return null;
        var window = new LimitWindow(seconds, align);
        string reason = writtenReason ?? PolicyText.LimitReason(counter, window, max, scope, key, incrementFrom);
        return new PolicyLimit(counter, window, max, scope, key, increment, incrementFrom, reason, pointer);
    }

    private ValuePath? ReadLimitPath(JsonNode node, string field, bool argumentsOnly, ref bool valid)
    {
        if (node.Find(field) is not { } property) return null;
        if (ReadString(property, $"'{field}'") is not string text)
        {
            valid = false;
            return null;
        }
        if (!PolicyPaths.TryParse(text, out var path, out string? error))
        {
            _report.Add(PolicyDiagnostics.InvalidPath, property.Value, text, error!);
            valid = false;
            return null;
        }
        if (argumentsOnly && (path!.Source != ValueSource.Args || path.Segments.Count == 0))
        {
            _report.Add(PolicyDiagnostics.InvalidLimitPath, property.Value, field, text);
            valid = false;
            return null;
        }
        return path;
    }

    /// <summary>Reports unknown fields, with a near match.</summary>
    private void CheckFields(JsonNode node, string what, string[] known)
    {
        foreach (var property in node.Properties)
        {
            if (Array.IndexOf(known, property.Name) >= 0) continue;
            string? near = Suggest(property.Name, known);
            _report.AddAtKey(PolicyDiagnostics.UnknownField, property, property.Name, what, near is null ? "" : $"; did you mean '{near}'?");
        }
    }

    private string? ReadString(JsonProperty property, string what)
    {
        if (property.Value.Kind == JsonNodeKind.String) return property.Value.String;
        _report.Add(PolicyDiagnostics.WrongType, property.Value, what, "a string", property.Value.Describe());
        return null;
    }

    private string? ReadOptionalString(JsonNode node, string field) =>
        node.Find(field) is { } property ? ReadString(property, $"'{field}'") : null;

    private T ReadEnum<T>(JsonNode node, string field, T fallback, (string Word, T Value)[] words)
    {
        if (node.Find(field) is not { } property) return fallback;
        var value = property.Value;
        var names = new string[words.Length];
        for (int i = 0; i < words.Length; i++) names[i] = words[i].Word;
        string expected = string.Join(" | ", names);
        if (value.Kind != JsonNodeKind.String)
        {
            _report.Add(PolicyDiagnostics.WrongType, value, $"'{field}'", $"a string ({expected})", value.Describe());
            return fallback;
        }
        foreach (var (word, result) in words)
        {
            if (string.Equals(word, value.String, StringComparison.Ordinal)) return result;
        }
        string? near = Suggest(value.String!, names);
        _report.Add(PolicyDiagnostics.InvalidEnumValue, value, value.Display(), field, expected, near is null ? "" : $"; did you mean '{near}'?");
        return fallback;
    }

    private static bool IsValidName(string name, int maxLength, bool allowColon)
    {
        if (name.Length == 0 || name.Length > maxLength) return false;
        foreach (char c in name)
        {
            if (!IsNameChar(c) && !(allowColon && c == ':')) return false;
        }
        return true;
    }

    /// <summary>The closest of <paramref name="candidates"/> to a misspelt <paramref name="word"/>, if any is close.</summary>
    internal static string? Suggest(string word, string[] candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            int distance = Distance(word.ToLowerInvariant(), candidate);
            // Close enough to be a typo, not a different word: ≤ 2 edits and under half the length.
            if (distance <= 2 && distance * 2 < Math.Max(candidate.Length, 2) && distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        return best;
    }

    /// <summary>Edit distance with adjacent transpositions (optimal string alignment).</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                int value = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) value = Math.Min(value, d[i - 2, j - 2] + 1);
                d[i, j] = value;
            }
        }
        return d[a.Length, b.Length];
    }
}
