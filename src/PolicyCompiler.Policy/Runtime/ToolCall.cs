namespace PolicyCompiler.Policy.Runtime;

/// <summary>
/// A <c>tools/call</c> as the evaluator sees it. The gateway fills it straight from the message
/// bytes: the tool name already unescaped (the policy must see exactly what the server will see),
/// the arguments as the raw JSON text of <c>params.arguments</c>. Nothing is turned into a string
/// on the hot path.
/// </summary>
public readonly ref struct ToolCall
{
    /// <summary>Creates a call.</summary>
    /// <param name="nameUtf8">The decoded tool name, UTF-8.</param>
    /// <param name="argumentsJson">The raw JSON of <c>params.arguments</c> (an object), or empty when absent.</param>
    /// <param name="grant">The caller's grant.</param>
    /// <param name="session">The MCP session id.</param>
    public ToolCall(ReadOnlySpan<byte> nameUtf8, ReadOnlySpan<byte> argumentsJson, string grant, string session)
    {
        NameUtf8 = nameUtf8;
        ArgumentsJson = argumentsJson;
        Grant = grant;
        Session = session;
    }

    /// <summary>The decoded tool name, UTF-8.</summary>
    public ReadOnlySpan<byte> NameUtf8 { get; }

    /// <summary>The raw JSON of <c>params.arguments</c>, or empty when the call has none.</summary>
    public ReadOnlySpan<byte> ArgumentsJson { get; }

    /// <summary>The caller's grant (identity for grant-scoped limits and conditions).</summary>
    public string Grant { get; }

    /// <summary>The MCP session id.</summary>
    public string Session { get; }
}
