using System.Globalization;
using System.Text;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Every text an evaluator shows an agent, in one place. The parser resolves reasons into the model
/// with these, so the interpreter and the compiled evaluators print identical strings and neither
/// builds a string per call.
/// </summary>
public static class PolicyText
{
    /// <summary>The reason for a call to a hidden tool (top-level <c>hide</c> or an entry's <c>"hide": true</c>).</summary>
    public const string HiddenReason = "tool is hidden by policy";

    /// <summary>The reason for a default deny when the policy writes no <c>default_reason</c>.</summary>
    public const string DefaultDenyReason = "tool is not allowed by this policy";

    /// <summary>
    /// The default reason of a deny rule of the <c>*</c> layer that writes none. The layer has no
    /// reason of its own (it decides no tool), so its rules fall back to this fixed text.
    /// </summary>
    public const string LayerDenyReason = "denied by a policy rule for every tool ('*')";

    /// <summary>The default reason of an approve rule of the <c>*</c> layer that writes none.</summary>
    public const string LayerApproveReason = "approval required by a policy rule for every tool ('*')";

    /// <summary>The default reason of a deny entry or rule that writes none: names the entry key.</summary>
    public static string DenyReason(string entryKey) => $"denied by policy entry '{entryKey}'";

    /// <summary>The default reason of an approve entry or rule that writes none.</summary>
    public static string ApproveReason(string entryKey) => $"approval required by policy entry '{entryKey}'";

    /// <summary>
    /// The reason a call is denied because the argument a limit's <c>increment_from</c> names is not
    /// a non-negative number (fail closed). Evaluators build it once per limit.
    /// </summary>
    public static string InvalidIncrementReason(PolicyLimit limit) =>
        $"argument '{limit.IncrementFrom?.Text}' must be a non-negative number (limit '{limit.Counter}')";

    /// <summary>
    /// The default reason of a limit, e.g. <c>rate limit 'x' allows 30 per minute per grant</c>.
    /// </summary>
    public static string LimitReason(string counter, LimitWindow window, double max, LimitScope scope, ValuePath? key, ValuePath? incrementFrom)
    {
        var text = new StringBuilder();
        text.Append(incrementFrom is null ? "rate limit '" : "spend limit '").Append(counter).Append("' allows ")
            .Append(FormatNumber(max));
        if (incrementFrom is not null) text.Append(" of ").Append(incrementFrom.Text);
        text.Append(" per ");
        if (window.Alignment == WindowAlignment.Calendar) text.Append("calendar ");
        text.Append(FormatWindow(window.Seconds));
        text.Append(scope switch
        {
            LimitScope.Session => " per session",
            LimitScope.Global => " in total",
            _ => " per grant",
        });
        if (key is not null) text.Append(" and per ").Append(key.Text);
        return text.ToString();
    }

    /// <summary>A window in words: <c>minute</c>, <c>hour</c>, <c>90 seconds</c>.</summary>
    public static string FormatWindow(long seconds) => seconds switch
    {
        1 => "second",
        60 => "minute",
        3600 => "hour",
        86400 => "day",
        _ => seconds.ToString(CultureInfo.InvariantCulture) + " seconds",
    };

    /// <summary>A number as the shortest round-trip invariant text (<c>30</c>, <c>2.5</c>).</summary>
    public static string FormatNumber(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
