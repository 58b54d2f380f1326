using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Enforcement.Approvals;

/// <summary>How far an approval reaches (docs/approvals.md, "Scopes").</summary>
public enum ApprovalScope : byte
{
    /// <summary>This call only (the default).</summary>
    Call,
    /// <summary>This call, and every later call in the same session to the same tool with the same (canonical) arguments.</summary>
    Session,
}

/// <summary>How a held call ended.</summary>
public enum ApprovalStatus : byte
{
    /// <summary>Still waiting for an answer.</summary>
    Pending,
    /// <summary>A person approved it: the original call is forwarded.</summary>
    Approved,
    /// <summary>A person denied it (or declined the elicitation form).</summary>
    Denied,
    /// <summary>Nobody answered in time: denied, and the reason says it timed out.</summary>
    TimedOut,
    /// <summary>The client cancelled the call, or its session ended: nobody is answered.</summary>
    Withdrawn,
}

/// <summary>Where an answer came from (written to the audit log as <c>via</c>).</summary>
public enum ApprovalChannel : byte
{
    /// <summary>The agent's own client, through MCP elicitation.</summary>
    Elicitation,
    /// <summary>The admin API (<c>POST /approvals/{id}/approve|deny</c>, <c>policyc approvals</c>).</summary>
    Admin,
    /// <summary>The approval's timeout.</summary>
    Timeout,
    /// <summary>The client's <c>notifications/cancelled</c> (or, over HTTP, it went away).</summary>
    Cancel,
    /// <summary>The session (or the upstream) ended while the call was held.</summary>
    SessionEnd,
    /// <summary>An earlier approval with session scope covered the call.</summary>
    Standing,
}

/// <summary>The answer that ended a held call.</summary>
/// <param name="Status">Approved, denied, timed out or withdrawn.</param>
/// <param name="Via">Where the answer came from.</param>
/// <param name="By">Who answered (the approver's name as given; null when nobody did).</param>
/// <param name="Note">The approver's note, or null.</param>
/// <param name="Scope">The scope of an approval.</param>
/// <param name="At">When the call was answered.</param>
public readonly record struct ApprovalOutcome(ApprovalStatus Status, ApprovalChannel Via, string? By, string? Note, ApprovalScope Scope, DateTimeOffset At);

/// <summary>The result of answering an approval through <see cref="ApprovalBroker.Answer"/>.</summary>
public enum AnswerResult : byte
{
    /// <summary>The answer decided the call.</summary>
    Answered,
    /// <summary>No approval has that id (never existed, or long forgotten): HTTP 404.</summary>
    NotFound,
    /// <summary>The approval was already answered, timed out or withdrawn: HTTP 409.</summary>
    AlreadyAnswered,
}

/// <summary>What the transport asks the broker to hold (see <see cref="ApprovalBroker.Prepare"/>).</summary>
internal sealed class ApprovalRequest
{
    public required RequestId RequestId { get; init; }
    public required string Grant { get; init; }
    public required string Session { get; init; }
    public required string Tool { get; init; }

    /// <summary>The canonical arguments, truncated to <see cref="ApprovalBroker.MaxArgumentsRendering"/> bytes (what a person sees).</summary>
    public required string Arguments { get; init; }

    /// <summary>Whether <see cref="Arguments"/> was cut short.</summary>
    public required bool ArgumentsTruncated { get; init; }

    /// <summary>Lower-case hex SHA-256 of the full canonical arguments (the standing-approval key and the audit's <c>argumentsSha256</c>).</summary>
    public required string ArgumentsSha256 { get; init; }

    /// <summary>The raw arguments JSON (for the audit line, which hashes and optionally writes them itself).</summary>
    public required byte[] RawArguments { get; init; }

    public required string Rule { get; init; }
    public required string Reason { get; init; }
    public required TimeSpan Timeout { get; init; }
}
