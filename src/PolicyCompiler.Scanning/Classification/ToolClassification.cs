using System.Text.Json;

namespace PolicyCompiler.Scanning.Classification;

/// <summary>How much a tool can change: what kind of starter rule <c>policyc scan</c> writes for it.</summary>
public enum ToolClass
{
    /// <summary>Only reads: allowed.</summary>
    Read,
    /// <summary>Changes something, additively: allowed under a per-grant rate limit.</summary>
    Write,
    /// <summary>Can destroy or overwrite: every call needs a human's approval.</summary>
    Destructive,
}

/// <summary>Which part of a tool's definition decided its class, strongest first.</summary>
public enum ClassificationSignal
{
    /// <summary>The tool's MCP annotations (<c>readOnlyHint</c>, <c>destructiveHint</c>).</summary>
    Annotations,
    /// <summary>A verb in the tool's name (<c>delete_file</c>, <c>getPodLogs</c>, <c>CreateCodeConnection</c>).</summary>
    Name,
    /// <summary>A verb in the first sentence of the tool's description.</summary>
    Description,
    /// <summary>Nothing recognisable: the MCP defaults (not read-only, destructive) apply.</summary>
    Default,
}

/// <summary>A tool's class, the signal that decided it, and the evidence in words (shown in the summary).</summary>
/// <param name="Class">The class.</param>
/// <param name="Signal">What decided it.</param>
/// <param name="Evidence">Why, e.g. <c>readOnlyHint=true</c> or <c>verb 'delete' in the name</c>.</param>
/// <param name="Notes">Hints that do not change the class but a reviewer wants to see (<c>idempotent</c>, <c>open world</c>); empty when none.</param>
public sealed record ToolClassification(ToolClass Class, ClassificationSignal Signal, string Evidence, string Notes = "")
{
    /// <summary>The signal and its evidence in words: <c>annotations: readOnlyHint=true</c>, <c>name: verb 'delete' in the name</c>.</summary>
    public string Because => Signal switch
    {
        ClassificationSignal.Annotations => "annotations",
        ClassificationSignal.Name => "name",
        ClassificationSignal.Description => "description",
        _ => "default",
    } + ": " + Evidence;
}

/// <summary>
/// The behaviour hints of MCP tool annotations (MCP server/tools, "Tool annotations"); null when the
/// server did not send the hint. Hints are untrusted unless the server is: they are a starting point
/// for a human-reviewed policy, never a security boundary.
/// </summary>
/// <param name="ReadOnly"><c>readOnlyHint</c>: the tool does not modify its environment (MCP default false).</param>
/// <param name="Destructive"><c>destructiveHint</c>: when not read-only, it may destroy or overwrite (MCP default true).</param>
/// <param name="Idempotent"><c>idempotentHint</c>: repeated calls with the same arguments have no further effect (default false).</param>
/// <param name="OpenWorld"><c>openWorldHint</c>: it reaches entities outside the server (default true).</param>
public sealed record ToolHints(bool? ReadOnly, bool? Destructive, bool? Idempotent, bool? OpenWorld)
{
    /// <summary>No annotations at all.</summary>
    public static ToolHints None { get; } = new(null, null, null, null);
}

/// <summary>One tool as a server listed it.</summary>
/// <param name="Name">The tool's name.</param>
/// <param name="Description">Its description, if any.</param>
/// <param name="InputSchema">Its input schema as sent (pinning hashes it), if any.</param>
/// <param name="Hints">Its annotation hints.</param>
public sealed record ScannedTool(string Name, string? Description, JsonElement? InputSchema, ToolHints Hints);
