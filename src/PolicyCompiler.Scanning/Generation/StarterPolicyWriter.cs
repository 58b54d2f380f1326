using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Scanning.Classification;
using PolicyCompiler.Scanning.Discovery;

namespace PolicyCompiler.Scanning.Generation;

/// <summary>How the starter policy is written.</summary>
/// <param name="WriteLimit">The per-grant rate limit of each write tool.</param>
/// <param name="Pin">Whether to pin each tool's definition (<c>"pin": "sha256:…"</c>).</param>
/// <param name="GeneratedAt">When the scan ran (the description says so).</param>
public sealed record StarterPolicyOptions(WriteLimit WriteLimit, bool Pin, DateTimeOffset GeneratedAt);

/// <summary>What the starter policy says about one tool.</summary>
/// <param name="Tool">The tool as listed.</param>
/// <param name="Classification">Its class and the signal that decided it.</param>
/// <param name="Rule">The rule written, in words (<c>allow</c>, <c>allow, 30/minute per grant</c>, <c>approve</c>), or why none was.</param>
/// <param name="Written">Whether the tool has an entry (false: left to the default deny).</param>
/// <param name="Pin">The pin written, if any.</param>
public sealed record PlannedTool(ScannedTool Tool, ToolClassification Classification, string Rule, bool Written, string? Pin);

/// <summary>A generated starter policy.</summary>
/// <param name="Utf8">The policy file (UTF-8 JSON, 2-space indent, LF line ends, trailing newline).</param>
/// <param name="Tools">One plan per listed tool, in the file's order (read, write, destructive; by name within each).</param>
public sealed record StarterPolicy(byte[] Utf8, IReadOnlyList<PlannedTool> Tools);

/// <summary>
/// Writes the starter policy of a scan (docs/scan.md, "The generated policy"): default deny; one
/// exact-name entry per tool, grouped read → write → destructive and sorted by name so a re-scan
/// diffs cleanly; read tools <c>{}</c> (allowed); write tools allowed under their own per-grant
/// counter; destructive tools <c>approve</c> with a reason naming the evidence. Written through
/// <see cref="Utf8JsonWriter"/>, never by string concatenation, so any name or description is escaped.
/// </summary>
public static class StarterPolicyWriter
{
    // The language's counter-name bound (docs/policy-language.md, Limits).
    private const int MaxCounterLength = 128;

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Indented = true,
        IndentSize = 2,
        NewLine = "\n",
        // Keeps non-ASCII text and quotes in descriptions readable; still strict JSON.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Classifies every tool of <paramref name="scan"/> and writes the policy.</summary>
    public static StarterPolicy Create(ScanResult scan, StarterPolicyOptions options)
    {
        ArgumentNullException.ThrowIfNull(scan);
        ArgumentNullException.ThrowIfNull(options);

        var planned = new List<PlannedTool>(scan.Tools.Count);
        var counters = new HashSet<string>(StringComparer.Ordinal);
        foreach (ScannedTool tool in scan.Tools
            .Select(t => (Tool: t, Class: ToolClassifier.Classify(t)))
            .OrderBy(t => t.Class.Class)
            .ThenBy(t => t.Tool.Name, StringComparer.Ordinal)
            .Select(t => t.Tool))
        {
            ToolClassification classification = ToolClassifier.Classify(tool);
            if (tool.Name.Length == 0 || tool.Name.Contains('*', StringComparison.Ordinal) || tool.Name.Contains('?', StringComparison.Ordinal))
            {
                // A key with * or ? is a pattern in the policy language; MCP names cannot hold them (server/tools#tool-names).
                planned.Add(new PlannedTool(tool, classification, "none: the name is not a valid MCP tool name (denied by default)", Written: false, Pin: null));
                continue;
            }
            string? pin = options.Pin ? ToolDefinitionPin.Compute(tool.Name, tool.Description, tool.InputSchema) : null;
            string rule = classification.Class switch
            {
                ToolClass.Read => "allow",
                ToolClass.Write => $"allow, {options.WriteLimit} per grant",
                _ => "approve",
            };
            planned.Add(new PlannedTool(tool, classification, rule, Written: true, pin));
        }

        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("version", "1");
            writer.WriteString("description", Description(scan, planned, options));
            writer.WriteString("default", "deny");
            writer.WriteStartObject("tools");
            foreach (PlannedTool tool in planned.Where(t => t.Written))
            {
                writer.WriteStartObject(tool.Tool.Name);
                if (tool.Classification.Class == ToolClass.Destructive)
                {
                    writer.WriteString("action", "approve");
                    writer.WriteString("reason", $"{tool.Tool.Name} is classified destructive ({tool.Classification.Because}): a human approves each call");
                }
                if (tool.Pin is not null)
                {
                    writer.WriteString("pin", tool.Pin);
                }
                if (tool.Classification.Class == ToolClass.Write)
                {
                    writer.WriteStartArray("limits");
                    writer.WriteStartObject();
                    writer.WriteString("counter", UniqueCounter(tool.Tool.Name, counters));
                    if (options.WriteLimit.WindowIsSeconds)
                    {
                        writer.WriteNumber("window", long.Parse(options.WriteLimit.Window, CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        writer.WriteString("window", options.WriteLimit.Window);
                    }
                    writer.WriteNumber("max", options.WriteLimit.Max);
                    writer.WriteString("scope", "grant");
                    writer.WriteEndObject();
                    writer.WriteEndArray();
                }
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        byte[] json = [.. buffer.WrittenSpan, (byte)'\n'];
        return new StarterPolicy(json, planned);
    }

    private static string Description(ScanResult scan, List<PlannedTool> planned, StarterPolicyOptions options)
    {
        int Count(ToolClass c) => planned.Count(t => t.Written && t.Classification.Class == c);
        string server = scan.ServerVersion.Length > 0 ? $"{scan.ServerName} {scan.ServerVersion}" : scan.ServerName;
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Generated by policyc scan from the MCP server '{server}' ({scan.Target.Describe()}) at ");
        text.Append(options.GeneratedAt.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        text.Append(CultureInfo.InvariantCulture, $": {Count(ToolClass.Read)} read tools allowed, {Count(ToolClass.Write)} write tools allowed at {options.WriteLimit} per grant each, ");
        text.Append(CultureInfo.InvariantCulture, $"{Count(ToolClass.Destructive)} destructive tools need approval; every other tool is denied.");
        if (options.Pin)
        {
            text.Append(" Tool definitions are pinned: a tool whose name, description or input schema changes is denied.");
        }
        text.Append(" Review every entry before use.");
        return text.ToString();
    }

    /// <summary>
    /// <c>&lt;tool&gt;_rate</c>, with characters outside the counter syntax <c>[A-Za-z0-9_.:-]</c> replaced,
    /// cut to the length bound, and numbered when two tools would share one: each write tool gets its own count.
    /// </summary>
    private static string UniqueCounter(string toolName, HashSet<string> used)
    {
        var name = new StringBuilder(toolName.Length + 5);
        foreach (char c in toolName)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or ':' or '-' ? c : '_');
        }
        string stem = name.ToString();
        for (int n = 1; ; n++)
        {
            string suffix = n == 1 ? "_rate" : $"_rate{n}";
            string candidate = (stem.Length + suffix.Length > MaxCounterLength ? stem[..(MaxCounterLength - suffix.Length)] : stem) + suffix;
            if (used.Add(candidate))
            {
                return candidate;
            }
        }
    }
}
