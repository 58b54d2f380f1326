using System.Globalization;
using PolicyCompiler.Scanning.Classification;
using PolicyCompiler.Scanning.Discovery;
using PolicyCompiler.Scanning.Generation;

namespace PolicyCompiler.Scanning.Reporting;

/// <summary>
/// The human-readable summary <c>policyc scan</c> prints on stderr: one table row per tool (name,
/// class, rule written, deciding signal), then totals. Colour (ANSI SGR) only when asked for: the
/// command asks when stderr is a terminal and <c>NO_COLOR</c> is unset (https://no-color.org).
/// </summary>
public static class ScanSummary
{
    private const string Reset = "\u001b[0m";
    private const string Bold = "\u001b[1m";

    /// <summary>Writes the summary of <paramref name="scan"/> and <paramref name="policy"/> to <paramref name="output"/>.</summary>
    public static void Write(TextWriter output, ScanResult scan, StarterPolicy policy, bool colour)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(scan);
        ArgumentNullException.ThrowIfNull(policy);

        string server = scan.ServerVersion.Length > 0 ? $"{scan.ServerName} {scan.ServerVersion}" : scan.ServerName;
        string protocol = scan.ProtocolVersion is null ? "" : $", MCP {scan.ProtocolVersion}";
        output.WriteLine($"Scanned {server} ({scan.Target.Describe()}{protocol}): {Plural(scan.Tools.Count, "tool")}");

        var rows = policy.Tools
            .Select(t => (Tool: t.Tool.Name, Class: ClassName(t.Classification.Class), t.Rule, Signal: SignalText(t.Classification), Kind: t.Classification.Class))
            .ToList();
        int toolWidth = Math.Max("TOOL".Length, rows.Max(r => r.Tool.Length));
        int classWidth = "destructive".Length;
        int ruleWidth = Math.Max("RULE".Length, rows.Max(r => r.Rule.Length));

        string header = $"  {"TOOL".PadRight(toolWidth)}  {"CLASS".PadRight(classWidth)}  {"RULE".PadRight(ruleWidth)}  SIGNAL";
        output.WriteLine(colour ? Bold + header + Reset : header);
        foreach (var row in rows)
        {
            string cls = row.Class.PadRight(classWidth);
            if (colour)
            {
                cls = ClassColour(row.Kind) + cls + Reset;
            }
            output.WriteLine($"  {row.Tool.PadRight(toolWidth)}  {cls}  {row.Rule.PadRight(ruleWidth)}  {row.Signal}");
        }

        int Count(ToolClass c) => policy.Tools.Count(t => t.Written && t.Classification.Class == c);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Count(ToolClass.Read)} read (allowed), {Count(ToolClass.Write)} write (rate-limited), {Count(ToolClass.Destructive)} destructive (approval); every other tool is denied"));
        foreach (string warning in scan.Warnings)
        {
            output.WriteLine("warning: " + warning);
        }
        foreach (PlannedTool skipped in policy.Tools.Where(t => !t.Written))
        {
            output.WriteLine($"warning: no entry for '{skipped.Tool.Name}': {skipped.Rule}");
        }
    }

    /// <summary>The class as the table and docs name it.</summary>
    public static string ClassName(ToolClass toolClass) => toolClass switch
    {
        ToolClass.Read => "read",
        ToolClass.Write => "write",
        _ => "destructive",
    };

    /// <summary>The signal column: which signal decided, its evidence, and the informational hints.</summary>
    public static string SignalText(ToolClassification classification)
    {
        ArgumentNullException.ThrowIfNull(classification);
        return classification.Because + (classification.Notes.Length > 0 ? " (" + classification.Notes + ")" : "");
    }

    private static string ClassColour(ToolClass toolClass) => toolClass switch
    {
        ToolClass.Read => "\u001b[32m",
        ToolClass.Write => "\u001b[33m",
        _ => "\u001b[31m",
    };

    private static string Plural(int count, string noun) =>
        count.ToString(CultureInfo.InvariantCulture) + " " + noun + (count == 1 ? "" : "s");
}
