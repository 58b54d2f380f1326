using System;

namespace PolicyCompiler.Policy.Language;

// The validated policy model. Every type here is an immutable record with value equality
// (collections are EquatableArray) so the source generator's incremental steps stay cached while
// the policy file is unchanged. The same types feed the interpreter, so both evaluators start
// from exactly the same reading of the file. Semantics: docs/policy-language.md.

/// <summary>What happens to a tool that no entry of the policy names.</summary>
public enum DefaultAction
{
    /// <summary>Deny tools that no entry matches (the default when <c>default</c> is absent).</summary>
    Deny,
    /// <summary>Allow tools that no entry matches.</summary>
    Allow,
}

/// <summary>Whether decisions are enforced or only recorded.</summary>
public enum PolicyMode
{
    /// <summary>Decisions are enforced (the default).</summary>
    Enforce,
    /// <summary>Decisions are computed and audited but every call is forwarded.</summary>
    Shadow,
}

/// <summary>The action of a tool entry or of a rule.</summary>
public enum ToolAction
{
    /// <summary>Forward the call (subject to limits).</summary>
    Allow,
    /// <summary>Refuse the call with a reason.</summary>
    Deny,
    /// <summary>Hold the call until a human approves it.</summary>
    Approve,
}

/// <summary>Who a counter is kept for.</summary>
public enum LimitScope
{
    /// <summary>One count per grant (the credential an agent calls with). The default.</summary>
    Grant,
    /// <summary>One count per MCP session.</summary>
    Session,
    /// <summary>One count for everyone.</summary>
    Global,
}

/// <summary>How a limit's window moves.</summary>
public enum WindowAlignment
{
    /// <summary>Exact sliding window: never more than max in ANY interval of the window's length. The default.</summary>
    Sliding,
    /// <summary>Fixed windows aligned to the UTC epoch (minute, hour, UTC day...).</summary>
    Calendar,
}

/// <summary>Where a condition reads its value from.</summary>
public enum ValueSource
{
    /// <summary><c>args...</c>: the call's arguments object, or a value inside it.</summary>
    Args,
    /// <summary><c>grant</c>: the caller's grant name.</summary>
    Grant,
    /// <summary><c>session</c>: the MCP session id.</summary>
    Session,
    /// <summary><c>tool</c>: the called tool's name (useful in pattern entries).</summary>
    Tool,
}

/// <summary>A comparison operator of a condition test.</summary>
public enum ConditionOperator
{
    /// <summary>JSON value equality (no type coercion; numbers by numeric value).</summary>
    Eq,
    /// <summary>Not equal.</summary>
    Neq,
    /// <summary>Equal to one of a list of constants.</summary>
    In,
    /// <summary>Equal to none of a list of constants.</summary>
    NotIn,
    /// <summary>Number less than.</summary>
    Lt,
    /// <summary>Number less than or equal.</summary>
    Lte,
    /// <summary>Number greater than.</summary>
    Gt,
    /// <summary>Number greater than or equal.</summary>
    Gte,
    /// <summary>String matches a regular expression (linear time, with a timeout).</summary>
    Regex,
    /// <summary>String contains a substring, or array contains an element.</summary>
    Contains,
    /// <summary>The value is present (true) or absent (false).</summary>
    Exists,
    /// <summary>String starts with.</summary>
    Prefix,
    /// <summary>String ends with.</summary>
    Suffix,
    /// <summary>String matches a glob (<c>*</c> any run of characters, <c>?</c> one character).</summary>
    Glob,
}

/// <summary>The kind of a JSON constant in a policy.</summary>
public enum ConstantKind
{
    /// <summary>A string.</summary>
    String,
    /// <summary>A number.</summary>
    Number,
    /// <summary><c>true</c> or <c>false</c>.</summary>
    Boolean,
    /// <summary><c>null</c>.</summary>
    Null,
    /// <summary>An array of constants (operands of <c>in</c>/<c>not_in</c>).</summary>
    Array,
}

/// <summary>A position in the policy file (1-based line and column), for diagnostics.</summary>
public readonly record struct SourcePosition(int Line, int Column);

/// <summary>A JSON constant written in the policy (an operand).</summary>
/// <param name="Kind">Its JSON kind.</param>
/// <param name="String">The decoded string, for <see cref="ConstantKind.String"/>.</param>
/// <param name="Number">The value, for <see cref="ConstantKind.Number"/>.</param>
/// <param name="Boolean">The value, for <see cref="ConstantKind.Boolean"/>.</param>
/// <param name="Items">The elements, for <see cref="ConstantKind.Array"/>.</param>
public sealed record JsonConstant(
    ConstantKind Kind,
    string? String,
    double Number,
    bool Boolean,
    EquatableArray<JsonConstant> Items);

/// <summary>One step of a value path: a property name or an array index.</summary>
/// <param name="Property">The property name (decoded), or null for an index step.</param>
/// <param name="Index">The array index, for an index step (-1 for a property step).</param>
public sealed record PathSegment(string? Property, int Index);

/// <summary>A path to a value, e.g. <c>args.repo.owner</c>, <c>args.items[0]</c>, <c>args["a.b"]</c>, <c>grant</c>.</summary>
/// <param name="Source">Where the value comes from.</param>
/// <param name="Segments">The steps inside the arguments object (empty for grant, session, tool, and for <c>args</c> itself).</param>
/// <param name="Text">The path as written in the policy (for traces and generated comments).</param>
public sealed record ValuePath(ValueSource Source, EquatableArray<PathSegment> Segments, string Text);

/// <summary>A condition: a test or a combination of conditions.</summary>
/// <param name="Pointer">JSON pointer of the condition in the policy file.</param>
public abstract record Condition(string Pointer);

/// <summary>One test: <c>{ "args.path": { "prefix": "/data/" } }</c>.</summary>
/// <param name="Path">The value tested.</param>
/// <param name="Operator">The comparison.</param>
/// <param name="Operand">The constant compared against (for <c>regex</c> and <c>glob</c> the pattern string; for <c>exists</c> a boolean).</param>
/// <param name="Pointer">JSON pointer of the operator in the policy file.</param>
public sealed record TestCondition(ValuePath Path, ConditionOperator Operator, JsonConstant Operand, string Pointer)
    : Condition(Pointer);

/// <summary>All of the conditions hold (an empty list holds).</summary>
public sealed record AllCondition(EquatableArray<Condition> Conditions, string Pointer) : Condition(Pointer);

/// <summary>At least one of the conditions holds (an empty list does not hold).</summary>
public sealed record AnyCondition(EquatableArray<Condition> Conditions, string Pointer) : Condition(Pointer);

/// <summary>The condition does not hold.</summary>
public sealed record NotCondition(Condition Condition, string Pointer) : Condition(Pointer);

/// <summary>An ordered rule of a tool entry: when the condition holds, the action decides.</summary>
/// <param name="When">The condition (null: always).</param>
/// <param name="Action">What the rule decides.</param>
/// <param name="Reason">The reason shown to the agent (for deny and approve).</param>
/// <param name="Pointer">JSON pointer of the rule, e.g. <c>/tools/DeleteCluster/rules/0</c>.</param>
public sealed record PolicyRule(Condition? When, ToolAction Action, string? Reason, string Pointer);

/// <summary>A window length and alignment.</summary>
/// <param name="Seconds">Length in seconds (minute = 60, hour = 3600, day = 86400).</param>
/// <param name="Alignment">Sliding (exact) or calendar-aligned.</param>
public sealed record LimitWindow(long Seconds, WindowAlignment Alignment);

/// <summary>A rate or spend limit on a named counter.</summary>
/// <param name="Counter">The counter's name; limits that name the same counter share its state.</param>
/// <param name="Window">The window.</param>
/// <param name="Max">At most this much admitted per window.</param>
/// <param name="Scope">Who the counter is kept for.</param>
/// <param name="Key">Optional: a separate count per value of this argument (e.g. per repository).</param>
/// <param name="Increment">How much one call adds (default 1), when <paramref name="IncrementFrom"/> is null.</param>
/// <param name="IncrementFrom">Optional: the call adds the (non-negative number) value of this argument.</param>
/// <param name="Reason">The reason shown when the limit refuses a call (a default is generated when absent).</param>
/// <param name="Pointer">JSON pointer of the limit, e.g. <c>/tools/CreateCodeConnection/limits/0</c>.</param>
public sealed record PolicyLimit(
    string Counter,
    LimitWindow Window,
    double Max,
    LimitScope Scope,
    ValuePath? Key,
    double Increment,
    ValuePath? IncrementFrom,
    string Reason,
    string Pointer);

/// <summary>
/// An entry of <c>tools</c>: an exact tool name or a pattern. The entry keyed exactly <c>*</c> is the
/// layer (<see cref="PolicyPatterns.IsLayer"/>): never selected, only its rules and limits are used,
/// and its action is always allow, reason null and hidden false (the reader rejects them, PC0024).
/// </summary>
/// <param name="Name">The key as written (decoded): an exact name, or a glob pattern with <c>*</c>/<c>?</c>.</param>
/// <param name="IsPattern">Whether <paramref name="Name"/> contains wildcards.</param>
/// <param name="Action">The entry's action when no rule decides (allow when absent).</param>
/// <param name="ActionIsExplicit">Whether <c>action</c> was written (it changes the rule pointer: <c>/tools/X/action</c> vs <c>/tools/X</c>).</param>
/// <param name="Reason">The reason shown for deny/approve.</param>
/// <param name="Hidden">Whether the entry hides matching tools (removed from tools/list, denied on call).</param>
/// <param name="Rules">Ordered rules; the first whose condition holds decides.</param>
/// <param name="Limits">Limits checked, in order, when the call is allowed.</param>
/// <param name="Pointer">JSON pointer of the entry, e.g. <c>/tools/Delete*</c>.</param>
/// <param name="Position">Where the entry's key is in the file.</param>
/// <param name="Pin">The pinned definition hash (<c>sha256:…</c>) of the tool an exact-name entry names, or null (docs/scan.md, "Pinning").</param>
/// <param name="ApprovalTimeoutSeconds">From <c>approval.timeout</c>: how long a call this entry holds for approval waits for an answer, or null for the policy's default (docs/approvals.md).</param>
public sealed record ToolEntry(
    string Name,
    bool IsPattern,
    ToolAction Action,
    bool ActionIsExplicit,
    string? Reason,
    bool Hidden,
    EquatableArray<PolicyRule> Rules,
    EquatableArray<PolicyLimit> Limits,
    string Pointer,
    SourcePosition Position,
    string? Pin = null,
    long? ApprovalTimeoutSeconds = null);

/// <summary>A validated policy.</summary>
/// <param name="Version">The language version (<c>"1"</c>).</param>
/// <param name="Name">The policy's name (from <c>name</c>, else the file name without extension).</param>
/// <param name="Description">Optional description.</param>
/// <param name="Default">What happens to tools no entry matches.</param>
/// <param name="DefaultReason">The reason shown for a default deny.</param>
/// <param name="Mode">Enforce or shadow.</param>
/// <param name="Hide">Top-level <c>hide</c> list: names and patterns removed from tools/list and denied on call.</param>
/// <param name="Tools">The tool entries in file order.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the policy file's UTF-8 bytes without a leading byte-order mark.</param>
/// <param name="SourceText">The policy file's text, exactly as read (printed by <c>GATEWAY policy</c>).</param>
/// <param name="ApprovalTimeoutSeconds">From the top-level <c>approval.timeout</c>: the approval timeout of entries that give none, or null for the gateway's default (2 minutes).</param>
public sealed record PolicyDocument(
    string Version,
    string Name,
    string? Description,
    DefaultAction Default,
    string DefaultReason,
    PolicyMode Mode,
    EquatableArray<HidePattern> Hide,
    EquatableArray<ToolEntry> Tools,
    string Sha256,
    string SourceText,
    long? ApprovalTimeoutSeconds = null);

/// <summary>An entry of the top-level <c>hide</c> list.</summary>
/// <param name="Pattern">A tool name or glob pattern.</param>
/// <param name="Pointer">JSON pointer, e.g. <c>/hide/0</c>.</param>
public sealed record HidePattern(string Pattern, string Pointer);
