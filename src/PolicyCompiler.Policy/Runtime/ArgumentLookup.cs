namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// Finds a value in a call's arguments JSON by path, without allocating. A property name that occurs
/// twice in an object on the way yields <see cref="PolicyValueKind.Ambiguous"/> (the server might
/// read either copy, so the policy must not guess).
/// </summary>
public static class ArgumentLookup
{
    /// <summary>Finds <paramref name="path"/> in <paramref name="argumentsJson"/> (empty: no arguments, so everything below is missing).</summary>
    public static PolicyValue Find(ReadOnlySpan<byte> argumentsJson, ArgumentPath path)
        => throw new NotImplementedException("contract: implemented by the runtime work (issue 2)");
}
