namespace PolicyCompiler.Policy.Runtime;

/// <summary>The kind of a <see cref="PolicyValue"/>.</summary>
public enum PolicyValueKind : byte
{
    /// <summary>The path does not resolve (absent property, index out of range, or not an object/array on the way).</summary>
    Missing,
    /// <summary>The path went through a property name that occurs twice in one object: the value cannot be trusted.</summary>
    Ambiguous,
    /// <summary>A JSON string.</summary>
    String,
    /// <summary>A JSON number.</summary>
    Number,
    /// <summary>JSON <c>true</c>.</summary>
    True,
    /// <summary>JSON <c>false</c>.</summary>
    False,
    /// <summary>JSON <c>null</c>.</summary>
    Null,
    /// <summary>A JSON object.</summary>
    Object,
    /// <summary>A JSON array.</summary>
    Array,
}

/// <summary>
/// A value a condition tests, located without copying: a slice of the call's arguments JSON, or
/// the grant/session string, or the tool name. Produced by <see cref="ArgumentLookup"/> (or the
/// <c>From*</c> factories) and consumed by <see cref="PolicyOps"/>.
/// </summary>
public readonly ref struct PolicyValue
{
    /// <summary>The value's kind.</summary>
    public PolicyValueKind Kind { get; init; }

    /// <summary>
    /// The raw UTF-8 bytes: for a string, the text between the quotes (still escaped when
    /// <see cref="HasEscapes"/>); for a number, its literal; for an object or array, the whole JSON value.
    /// </summary>
    public ReadOnlySpan<byte> Raw { get; init; }

    /// <summary>Whether <see cref="Raw"/> of a string holds JSON escapes (<c>\n</c>, <c>\u0041</c>...).</summary>
    public bool HasEscapes { get; init; }

    /// <summary>For a string that came from .NET (grant, session): the string itself; <see cref="Raw"/> is empty then.</summary>
    public string? Text { get; init; }

    /// <summary>The missing value.</summary>
    public static PolicyValue Missing => default;

    /// <summary>A value behind a duplicated key.</summary>
    public static PolicyValue Ambiguous => new() { Kind = PolicyValueKind.Ambiguous };

    /// <summary>A string value from unescaped UTF-8 (the tool name).</summary>
    public static PolicyValue FromUtf8String(ReadOnlySpan<byte> utf8) => new() { Kind = PolicyValueKind.String, Raw = utf8 };

    /// <summary>A string value from a .NET string (grant, session).</summary>
    public static PolicyValue FromString(string text) => new() { Kind = PolicyValueKind.String, Text = text };
}

/// <summary>One step of an argument path: a property (UTF-8 name) or an array index.</summary>
/// <param name="PropertyUtf8">The property's name in UTF-8, or null for an index step.</param>
/// <param name="Index">The index for an index step; -1 for a property step.</param>
public readonly record struct PathStep(byte[]? PropertyUtf8, int Index);

/// <summary>A compiled argument path (<c>args.repo.owner</c>), built once per policy.</summary>
/// <param name="Text">The path as written in the policy.</param>
/// <param name="Steps">Its steps below <c>args</c> (empty: the arguments object itself).</param>
public sealed record ArgumentPath(string Text, PathStep[] Steps);
