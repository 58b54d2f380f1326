using System.Buffers;
using System.Text;
using Microsoft.Extensions.Logging;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Enforcement;

/// <summary>
/// Rug-pull protection for one session (docs/scan.md, "Pinning"): the policy pins some tools'
/// definitions (<see cref="PolicyInfo.Pins"/>); every <c>tools/list</c> result is checked against them
/// by <see cref="ToolsListFilter"/>, and a <c>tools/call</c> of a pinned tool is refused unless its
/// definition was listed, and matched, in this session. A mismatch is remembered for the rest of the
/// session: a server that changes a tool's description after review cannot switch back and forth.
/// Thread-safe: lists are checked on the upstream loop, calls on the client loop. A policy whose
/// pin table changes (a reload) starts over: every pinned tool must be listed again.
/// </summary>
internal sealed class PinVerifier
{
    /// <summary>Rule pointer of a call to a tool whose listed definition differs from its pin.</summary>
    public const string MismatchRule = "gateway:pin-mismatch";

    /// <summary>Rule pointer of a call to a pinned tool not yet listed in this session.</summary>
    public const string UnverifiedRule = "gateway:pin-unverified";

    private const int StackNameChars = 256;

    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private IReadOnlyDictionary<string, string>? _table;
    private Dictionary<string, PinState> _states = new(StringComparer.Ordinal);
    private Dictionary<string, PinState>.AlternateLookup<ReadOnlySpan<char>> _byName;

    public PinVerifier(ILogger logger)
    {
        _logger = logger;
        _byName = _states.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    private enum Status : byte
    {
        Unverified,
        Verified,
        Changed,
    }

    private sealed class PinState(string name, string pin)
    {
        public string Name { get; } = name;

        public string Pin { get; } = pin;

        public Status Status { get; set; }

        public string? Listed { get; set; }
    }

    /// <summary>
    /// Refuses a call to a pinned tool whose definition changed, or was not verified in this session.
    /// False (no allocation) when the policy pins nothing or not this tool, or the tool was verified.
    /// </summary>
    public bool TryRefuse(IReadOnlyDictionary<string, string> pins, ReadOnlySpan<byte> toolNameUtf8, out Decision refusal)
    {
        refusal = default;
        if (pins.Count == 0)
        {
            return false;
        }

        char[]? rented = null;
        Span<char> chars = toolNameUtf8.Length <= StackNameChars ? stackalloc char[StackNameChars] : (rented = ArrayPool<char>.Shared.Rent(toolNameUtf8.Length));
        try
        {
            int length = Encoding.UTF8.GetChars(toolNameUtf8, chars);
            lock (_gate)
            {
                Sync(pins);
                if (!_byName.TryGetValue(chars[..length], out PinState? state) || state.Status == Status.Verified)
                {
                    return false;
                }

                if (state.Status == Status.Changed)
                {
                    refusal = Decision.Deny(MismatchRule,
                        $"the definition of tool '{state.Name}' changed since it was pinned (pinned {state.Pin}, listed {state.Listed}); calls are refused until the policy is reviewed");
                }
                else
                {
                    refusal = Decision.Deny(UnverifiedRule,
                        $"tool '{state.Name}' has a pinned definition that this session has not verified: list the tools (tools/list) first");
                }

                PinLog.CallRefused(_logger, state.Name, refusal.Rule);
                return true;
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The pin of <paramref name="toolName"/>, or null when the policy does not pin it.</summary>
    public string? PinOf(IReadOnlyDictionary<string, string> pins, ReadOnlySpan<char> toolName)
    {
        if (pins.Count == 0)
        {
            return null;
        }

        lock (_gate)
        {
            Sync(pins);
            return _byName.TryGetValue(toolName, out PinState? state) ? state.Pin : null;
        }
    }

    /// <summary>
    /// Records a listed definition of a pinned tool (<paramref name="listed"/> null: it could not be
    /// read unambiguously). Returns whether it matches the pin; a mismatch is logged and sticks for the session.
    /// </summary>
    public bool Verify(IReadOnlyDictionary<string, string> pins, string toolName, string? listed)
    {
        lock (_gate)
        {
            Sync(pins);
            if (!_states.TryGetValue(toolName, out PinState? state))
            {
                return true;
            }

            if (listed is not null && string.Equals(listed, state.Pin, StringComparison.Ordinal))
            {
                if (state.Status == Status.Unverified)
                {
                    state.Status = Status.Verified;
                    PinLog.Verified(_logger, toolName);
                }

                return state.Status == Status.Verified;
            }

            if (state.Status != Status.Changed || !string.Equals(state.Listed, listed, StringComparison.Ordinal))
            {
                PinLog.Mismatch(_logger, toolName, state.Pin, listed ?? "(an unreadable definition)");
            }

            state.Status = Status.Changed;
            state.Listed = listed ?? "an unreadable definition";
            return false;
        }
    }

    /// <summary>Rebuilds the session's state when the policy's pin table is not the one it was built for (a reload).</summary>
    private void Sync(IReadOnlyDictionary<string, string> pins)
    {
        if (ReferenceEquals(pins, _table))
        {
            return;
        }

        var states = new Dictionary<string, PinState>(pins.Count, StringComparer.Ordinal);
        foreach (KeyValuePair<string, string> pin in pins)
        {
            states[pin.Key] = new PinState(pin.Key, pin.Value);
        }

        _states = states;
        _byName = states.GetAlternateLookup<ReadOnlySpan<char>>();
        _table = pins;
    }
}

/// <summary>What the pin checks log (event ids 40–42).</summary>
internal static partial class PinLog
{
    [LoggerMessage(40, LogLevel.Warning, "Tool '{Tool}' is not its pinned definition (pinned {Pinned}, listed {Listed}): removed from tools/list and refused for the rest of the session")]
    public static partial void Mismatch(ILogger logger, string tool, string pinned, string listed);

    [LoggerMessage(41, LogLevel.Debug, "Tool '{Tool}' matches its pinned definition")]
    public static partial void Verified(ILogger logger, string tool);

    [LoggerMessage(42, LogLevel.Warning, "Refused a call to pinned tool '{Tool}' ({Rule})")]
    public static partial void CallRefused(ILogger logger, string tool, string rule);
}
