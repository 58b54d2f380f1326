using System.Globalization;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.State;

/// <summary>
/// The text that names one counter in a shared store: prefix, counter name, scope value and argument key.
/// </summary>
/// <remarks>
/// Counter names are <c>[A-Za-z0-9_.:-]</c>, but a scope (a grant or session id) and a key (an argument's
/// text) can hold any character, so both carry their length: two different identities never print the
/// same text (<c>a|b</c> + <c>c</c> vs <c>a</c> + <c>b|c</c>). A missing key differs from the empty key.
/// </remarks>
internal static class CounterIdentity
{
    public static string Format(string prefix, in CounterRequest request)
    {
        string scopeLength = request.ScopeKey.Length.ToString(CultureInfo.InvariantCulture);
        return request.ArgumentKey is null
            ? string.Concat(prefix, request.Counter, "|", scopeLength, ":", request.ScopeKey, "|-")
            : string.Concat(prefix, request.Counter, "|", scopeLength, ":", request.ScopeKey, "|+") + request.ArgumentKey;
    }

    /// <summary>100 ns ticks from the Unix epoch to the calendar window's end for <paramref name="atTicks"/>.</summary>
    public static long CalendarWindowIndex(long atTicks, long windowTicks) =>
        FloorDiv(atTicks - DateTimeOffset.UnixEpoch.UtcTicks, windowTicks);

    /// <summary>When calendar window <paramref name="index"/> ends, in UTC ticks.</summary>
    public static long CalendarWindowEnd(long index, long windowTicks) =>
        (index + 1) * windowTicks + DateTimeOffset.UnixEpoch.UtcTicks;

    public static long WindowTicks(long windowSeconds) => Math.Max(1, windowSeconds) * TimeSpan.TicksPerSecond;

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);
}
