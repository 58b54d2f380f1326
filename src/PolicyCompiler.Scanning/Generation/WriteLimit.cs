using System.Globalization;

namespace PolicyCompiler.Scanning.Generation;

/// <summary>
/// The rate limit written for each write tool: <c>--write-limit MAX/WINDOW</c>, e.g. <c>30/minute</c>,
/// <c>500/hour</c>, <c>10/90</c> (seconds). One counter per tool, kept per grant.
/// </summary>
/// <param name="Max">Calls admitted per window.</param>
/// <param name="Window">The window as the policy writes it: <c>second</c>, <c>minute</c>, <c>hour</c>, <c>day</c>, or a number of seconds.</param>
public sealed record WriteLimit(int Max, string Window)
{
    /// <summary>The default: 30 calls per minute per grant per tool (the seed policy's limit).</summary>
    public static WriteLimit Default { get; } = new(30, "minute");

    /// <summary>Whether <see cref="Window"/> is a number of seconds rather than a unit name.</summary>
    public bool WindowIsSeconds => char.IsAsciiDigit(Window[0]);

    /// <summary>Parses <c>MAX/WINDOW</c>; null with <paramref name="error"/> set when it is not one.</summary>
    public static WriteLimit? TryParse(string text, out string? error)
    {
        ArgumentNullException.ThrowIfNull(text);
        error = null;
        string[] parts = text.Trim().Split('/');
        if (parts.Length != 2 ||
            !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int max) || max <= 0)
        {
            error = $"--write-limit '{text}' is not MAX/WINDOW with MAX a whole number above 0 (e.g. 30/minute, 500/hour, 10/90)";
            return null;
        }
        string window = parts[1].Trim().ToLowerInvariant();
        switch (window)
        {
            case "s" or "sec" or "second": return new WriteLimit(max, "second");
            case "m" or "min" or "minute": return new WriteLimit(max, "minute");
            case "h" or "hour": return new WriteLimit(max, "hour");
            case "d" or "day": return new WriteLimit(max, "day");
        }
        string digits = window.EndsWith('s') ? window[..^1] : window;
        // The language's bound: whole seconds 1…31622400 (docs/policy-language.md, Limits).
        if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds) && seconds is >= 1 and <= 31_622_400)
        {
            return new WriteLimit(max, seconds.ToString(CultureInfo.InvariantCulture));
        }
        error = $"--write-limit window '{parts[1]}' is not second, minute, hour, day or a number of seconds from 1 to 31622400";
        return null;
    }

    /// <summary>How the summary shows it: <c>30/minute</c>, <c>10/90s</c>.</summary>
    public override string ToString() => Max.ToString(CultureInfo.InvariantCulture) + "/" + Window + (WindowIsSeconds ? "s" : "");
}
