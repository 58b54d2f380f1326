using System.Buffers;
using PolicyCompiler.Gateway.Enforcement.Approvals;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Audit;

/// <summary>Which line an audit entry becomes.</summary>
internal enum AuditEntryKind : byte
{
    /// <summary>A decision on a tools/call (<c>"event":"decision"</c>).</summary>
    Decision,
    /// <summary>How the upstream answered a forwarded call (<c>"event":"upstream"</c>).</summary>
    Upstream,
    /// <summary>A call held for approval, or its answer (<c>"event":"approval"</c>, docs/approvals.md).</summary>
    Approval,
}

/// <summary>How the upstream answered a forwarded call.</summary>
internal enum UpstreamOutcome : byte
{
    /// <summary>A result without <c>isError</c>.</summary>
    Result,
    /// <summary>A result with <c>isError: true</c> (the tool failed).</summary>
    ToolError,
    /// <summary>A JSON-RPC error.</summary>
    Error,
    /// <summary>The upstream closed before answering (the reservation was rolled back).</summary>
    NoResponse,
    /// <summary>The client cancelled the call (<c>notifications/cancelled</c>) before an answer came; the reservation was committed, since the call did reach the server.</summary>
    Cancelled,
}

/// <summary>
/// One audit record on its way to the writer. A struct carried by the channel, so queueing it
/// allocates nothing: the tool name and argument bytes travel in one rented buffer that the writer
/// returns to the pool; every string is a constant of the evaluator or of the session.
/// </summary>
internal struct AuditEntry
{
    public AuditEntryKind Kind;
    public DateTimeOffset Time;
    public string Session;
    public string Grant;
    public RequestId Id;
    public byte[]? Buffer;
    public int NameLength;
    public int ArgumentsLength;
    public bool HasArguments;
    public DecisionKind Decision;
    public bool Forwarded;
    public bool Shadow;
    public string Rule;
    public string? Reason;
    public string? Counter;
    public long RetryAfterSeconds;
    public long DecisionNanoseconds;
    public UpstreamOutcome Outcome;
    public long LatencyNanoseconds;

    // A decision line: the call is held for approval (action "held"), or was released by approval ApprovalId.
    public bool Held;

    // Approval lines (and a released call's decision line): the approval, its state and who answered.
    public string? ApprovalId;
    public ApprovalStatus ApprovalStatus;
    public ApprovalChannel? ApprovalVia;
    public string? ApprovalBy;
    public string? ApprovalNote;
    public ApprovalScope ApprovalScope;
    public DateTimeOffset? ApprovalExpires;

    /// <summary>Copies the tool name and arguments into a rented buffer owned by the entry.</summary>
    public void CaptureCall(ReadOnlySpan<byte> name, ReadOnlySpan<byte> arguments, bool hasArguments)
    {
        Buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, name.Length + arguments.Length));
        name.CopyTo(Buffer);
        arguments.CopyTo(Buffer.AsSpan(name.Length));
        NameLength = name.Length;
        ArgumentsLength = arguments.Length;
        HasArguments = hasArguments;
    }

    /// <summary>The tool name (UTF-8).</summary>
    public readonly ReadOnlySpan<byte> Name => Buffer is null ? default : Buffer.AsSpan(0, NameLength);

    /// <summary>The raw arguments JSON.</summary>
    public readonly ReadOnlySpan<byte> Arguments => Buffer is null ? default : Buffer.AsSpan(NameLength, ArgumentsLength);

    /// <summary>Gives the buffer back to the pool.</summary>
    public void Release()
    {
        if (Buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(Buffer);
            Buffer = null;
        }
    }
}
