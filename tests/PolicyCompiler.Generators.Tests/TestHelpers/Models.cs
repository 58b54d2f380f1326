extern alias generator;

using generator::PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Generators.Tests.TestHelpers;

/// <summary>
/// Hand-made policy models in the generator's copy of the language types, for emitter tests that
/// do not go through the parser. Pointers follow the parser's RFC 6901 form.
/// </summary>
internal static class Models
{
    public static string Escape(string key) => key.Replace("~", "~0").Replace("/", "~1");

    public static PolicyDocument Policy(string name, ToolEntry[] tools, HidePattern[]? hide = null, DefaultAction @default = DefaultAction.Deny, string defaultReason = "tool is not allowed by this policy") =>
        new("1", name, "hand-made", @default, defaultReason, PolicyMode.Enforce,
            new EquatableArray<HidePattern>(hide ?? []), new EquatableArray<ToolEntry>(tools),
            new string('0', 64), "{}");

    public static ToolEntry Entry(string key, ToolAction action = ToolAction.Allow, string? reason = null, bool hidden = false, PolicyRule[]? rules = null, PolicyLimit[]? limits = null) =>
        new(key, key.Contains('*') || key.Contains('?'), action, action != ToolAction.Allow, reason, hidden,
            new EquatableArray<PolicyRule>(rules ?? []), new EquatableArray<PolicyLimit>(limits ?? []),
            "/tools/" + Escape(key), new SourcePosition(1, 1));

    public static PolicyRule Rule(string entryKey, int index, Condition? when, ToolAction action, string? reason) =>
        new(when, action, reason, "/tools/" + Escape(entryKey) + "/rules/" + index);

    public static PolicyLimit Limit(string entryKey, int index, string counter, long seconds, double max, LimitScope scope = LimitScope.Grant, string? reason = null) =>
        new(counter, new LimitWindow(seconds, WindowAlignment.Sliding), max, scope, null, 1, null,
            reason ?? "rate limit " + counter, "/tools/" + Escape(entryKey) + "/limits/" + index);

    public static ValuePath Args(params string[] properties) =>
        new(ValueSource.Args, new EquatableArray<PathSegment>(properties.Select(p => new PathSegment(p, -1)).ToArray()), "args." + string.Join(".", properties));

    public static JsonConstant Str(string value) => new(ConstantKind.String, value, 0, false, EquatableArray<JsonConstant>.Empty);

    public static JsonConstant Num(double value) => new(ConstantKind.Number, null, value, false, EquatableArray<JsonConstant>.Empty);

    public static JsonConstant Arr(params JsonConstant[] items) => new(ConstantKind.Array, null, 0, false, new EquatableArray<JsonConstant>(items));

    public static TestCondition Test(ValuePath path, ConditionOperator op, JsonConstant operand) => new(path, op, operand, "/c");

    public static AnyCondition Any(params Condition[] conditions) => new(new EquatableArray<Condition>(conditions), "/c");

    public static NotCondition Not(Condition condition) => new(condition, "/c");
}
