using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Diagnostics;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Enforcement.Approvals;

/// <summary>
/// The held calls of one gateway process, shared by every session and transport (docs/approvals.md).
/// A transport registers a call the policy decided <c>approval_required</c> and awaits its
/// <see cref="PendingApproval.Completion"/>; a person answers it through the client's elicitation form
/// or the admin API; a timer (on the injected <see cref="TimeProvider"/>) denies it when nobody does;
/// a cancellation or the end of the session withdraws it. Each step is audited and counted.
/// <para>
/// Approval ids are 128 random bits: knowing one is what the admin API acts on (behind its token),
/// so they must not be guessable from another session's. Answered ids are remembered (bounded) so a
/// second answer is told 409 rather than 404.
/// </para>
/// </summary>
public sealed class ApprovalBroker : IDisposable
{
    /// <summary>The timeout of an approval when the policy gives none (docs/policy-language.md, <c>approval.timeout</c>).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    /// <summary>How many bytes of canonical arguments a person is shown (the rest is cut, and the listing says so).</summary>
    public const int MaxArgumentsRendering = 2048;

    /// <summary>How many answered ids are remembered for the 409 answer.</summary>
    internal const int AnsweredCapacity = 1024;

    /// <summary>How many held calls may wait at once, over every session; more are denied at once (a loop must not grow memory without bound).</summary>
    public const int MaxPending = 1024;

    private readonly TimeProvider _time;
    private readonly AuditLog? _audit;
    private readonly GatewayMetrics? _metrics;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, PendingApproval> _pending = new(StringComparer.Ordinal);
    private readonly Dictionary<string, byte> _answered = new(StringComparer.Ordinal);
    private readonly Queue<string> _answeredOrder = new();
    private readonly HashSet<string> _standing = new(StringComparer.Ordinal);

    /// <summary>Creates an empty broker.</summary>
    /// <param name="time">The clock for timeouts and the times shown (tests inject a fake one).</param>
    /// <param name="audit">Where every request and answer is recorded, or null.</param>
    /// <param name="metrics">Where the pending gauge and answer counts are kept, or null.</param>
    /// <param name="logger">Diagnostics.</param>
    public ApprovalBroker(TimeProvider? time = null, AuditLog? audit = null, GatewayMetrics? metrics = null, ILogger? logger = null)
    {
        _time = time ?? TimeProvider.System;
        _audit = audit;
        _metrics = metrics;
        _logger = logger ?? NullLogger.Instance;
        metrics?.ObservePendingApprovals(() => Count);
    }

    /// <summary>How many calls wait for an answer.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>The clock.</summary>
    internal TimeProvider Time => _time;

    /// <summary>The calls waiting for an answer, oldest first.</summary>
    public IReadOnlyList<PendingApproval> List()
    {
        var list = new List<PendingApproval>();
        lock (_gate)
        {
            list.AddRange(_pending.Values);
        }

        list.Sort(static (a, b) => a.CreatedAt.CompareTo(b.CreatedAt));
        return list;
    }

    /// <summary>The pending approval with <paramref name="id"/>, or null.</summary>
    public PendingApproval? Find(string id)
    {
        lock (_gate)
        {
            return _pending.GetValueOrDefault(id);
        }
    }

    /// <summary>Builds the request for a call: the bounded canonical rendering of its arguments and their hash.</summary>
    internal static ApprovalRequest Prepare(in RequestId requestId, string grant, string session, ReadOnlySpan<byte> toolName, ReadOnlySpan<byte> arguments, string rule, string reason, TimeSpan timeout)
    {
        var canonical = new ArrayBufferWriter<byte>(Math.Max(16, arguments.Length));
        try
        {
            if (arguments.IsEmpty)
            {
                canonical.Write("{}"u8);
            }
            else
            {
                CanonicalJson.Write(arguments, canonical);
            }
        }
        catch (JsonException)
        {
            // Cannot happen for arguments the classifier accepted; show the raw bytes rather than nothing.
            canonical.ResetWrittenCount();
            canonical.Write(arguments);
        }

        ReadOnlySpan<byte> text = canonical.WrittenSpan;
        string sha256 = Convert.ToHexStringLower(SHA256.HashData(text));
        bool truncated = text.Length > MaxArgumentsRendering;
        if (truncated)
        {
            // Cut on a UTF-8 character boundary (never inside a multi-byte sequence).
            int cut = MaxArgumentsRendering;
            while (cut > 0 && (text[cut] & 0xC0) == 0x80)
            {
                cut--;
            }

            text = text[..cut];
        }

        return new ApprovalRequest
        {
            RequestId = requestId,
            Grant = grant,
            Session = session,
            Tool = Encoding.UTF8.GetString(toolName),
            Arguments = Encoding.UTF8.GetString(text) + (truncated ? "…" : string.Empty),
            ArgumentsTruncated = truncated,
            ArgumentsSha256 = sha256,
            RawArguments = arguments.ToArray(),
            Rule = rule,
            Reason = reason,
            Timeout = timeout <= TimeSpan.Zero ? DefaultTimeout : timeout,
        };
    }

    /// <summary>
    /// Whether an earlier approval with session scope covers this call (same session, tool and canonical
    /// arguments). When it does, the use is audited (<c>via: standing</c>) and the call goes on at once.
    /// </summary>
    internal bool TryUseStanding(ApprovalRequest request)
    {
        lock (_gate)
        {
            if (request.Session.Length == 0 || !_standing.Contains(StandingKey(request.Session, request.Grant, request.Tool, request.ArgumentsSha256)))
            {
                return false;
            }
        }

        _metrics?.RecordApprovalOutcome("standing");
        Audit(request, id: null, ApprovalStatus.Approved, ApprovalChannel.Standing, by: null, note: null, ApprovalScope.Session, expires: null);
        return true;
    }

    /// <summary>
    /// Holds a call: gives it an id, audits the request, starts its timeout. Null when
    /// <see cref="MaxPending"/> calls already wait (the caller denies the call).
    /// </summary>
    internal PendingApproval? Register(ApprovalRequest request)
    {
        DateTimeOffset now = _time.GetUtcNow();
        var approval = new PendingApproval(NewId(), request, now, now + request.Timeout);
        lock (_gate)
        {
            if (_pending.Count >= MaxPending)
            {
                return null;
            }

            _pending.Add(approval.Id, approval);
        }

        Audit(request, approval.Id, ApprovalStatus.Pending, via: null, by: null, note: null, ApprovalScope.Call, approval.ExpiresAt);
        ApprovalLog.Requested(_logger, approval.Id, request.Tool, request.Session);
        // The timer holds the broker and the approval only until it fires or is disposed on the answer.
        approval.Timer = _time.CreateTimer(static state =>
        {
            var (broker, held) = ((ApprovalBroker, PendingApproval))state!;
            broker.Complete(held.Id, ApprovalStatus.TimedOut, ApprovalChannel.Timeout, by: null, note: null, ApprovalScope.Call);
        }, (this, approval), request.Timeout, Timeout.InfiniteTimeSpan);
        return approval;
    }

    /// <summary>Answers a held call (approve or deny); the first answer wins.</summary>
    /// <param name="id">The approval id.</param>
    /// <param name="approve">Approve (forward) or deny.</param>
    /// <param name="by">Who answers (shown in the audit log).</param>
    /// <param name="note">An optional note (shown to the agent on a denial, and audited).</param>
    /// <param name="scope">This call only, or the rest of the session for the same tool and arguments.</param>
    /// <param name="via">Where the answer came from.</param>
    public AnswerResult Answer(string id, bool approve, string? by, string? note, ApprovalScope scope, ApprovalChannel via)
    {
        ArgumentNullException.ThrowIfNull(id);
        return Complete(id, approve ? ApprovalStatus.Approved : ApprovalStatus.Denied, via, by, note, approve ? scope : ApprovalScope.Call);
    }

    /// <summary>Withdraws a held call (its client cancelled it, or went away): nobody is answered.</summary>
    public AnswerResult Withdraw(string id, ApprovalChannel via) => Complete(id, ApprovalStatus.Withdrawn, via, by: null, note: null, ApprovalScope.Call);

    /// <summary>
    /// The client cancelled request <paramref name="requestId"/> of its session (<c>notifications/cancelled</c>
    /// posted separately over HTTP): withdraws the held call it names. False when none is held.
    /// </summary>
    internal bool TryWithdrawRequest(string session, string grant, in RequestId requestId)
    {
        string? id = null;
        lock (_gate)
        {
            foreach (PendingApproval approval in _pending.Values)
            {
                if (approval.Request.Session == session && approval.Request.Grant == grant && approval.Request.RequestId.Equals(requestId))
                {
                    id = approval.Id;
                    break;
                }
            }
        }

        return id is not null && Withdraw(id, ApprovalChannel.Cancel) == AnswerResult.Answered;
    }

    /// <summary>The session ended: withdraws its held calls and forgets its standing approvals.</summary>
    public void EndSession(string session)
    {
        var ids = new List<string>();
        lock (_gate)
        {
            foreach (PendingApproval approval in _pending.Values)
            {
                if (approval.Request.Session == session)
                {
                    ids.Add(approval.Id);
                }
            }

            _standing.RemoveWhere(key => key.StartsWith(session + "\0", StringComparison.Ordinal));
        }

        foreach (string id in ids)
        {
            Withdraw(id, ApprovalChannel.SessionEnd);
        }
    }

    /// <summary>Withdraws every held call (the gateway stops).</summary>
    public void Dispose()
    {
        foreach (PendingApproval approval in List())
        {
            Withdraw(approval.Id, ApprovalChannel.SessionEnd);
        }
    }

    private AnswerResult Complete(string id, ApprovalStatus status, ApprovalChannel via, string? by, string? note, ApprovalScope scope)
    {
        PendingApproval? approval;
        lock (_gate)
        {
            if (!_pending.Remove(id, out approval))
            {
                return _answered.ContainsKey(id) ? AnswerResult.AlreadyAnswered : AnswerResult.NotFound;
            }

            _answered[id] = 0;
            _answeredOrder.Enqueue(id);
            if (_answeredOrder.Count > AnsweredCapacity)
            {
                _answered.Remove(_answeredOrder.Dequeue());
            }

            if (status == ApprovalStatus.Approved && scope == ApprovalScope.Session)
            {
                if (approval.Request.Session.Length == 0)
                {
                    // No session to scope it to (a sessionless HTTP request): it approves this call only.
                    scope = ApprovalScope.Call;
                }
                else
                {
                    _standing.Add(StandingKey(approval.Request.Session, approval.Request.Grant, approval.Request.Tool, approval.Request.ArgumentsSha256));
                }
            }
        }

        approval.Timer?.Dispose();
        var outcome = new ApprovalOutcome(status, via, by, note, scope, _time.GetUtcNow());
        _metrics?.RecordApprovalOutcome(StatusName(status));
        Audit(approval.Request, approval.Id, status, via, by, note, scope, expires: null);
        ApprovalLog.Answered(_logger, approval.Id, StatusName(status), ChannelName(via));
        approval.SetOutcome(outcome);
        return AnswerResult.Answered;
    }

    private void Audit(ApprovalRequest request, string? id, ApprovalStatus status, ApprovalChannel? via, string? by, string? note, ApprovalScope scope, DateTimeOffset? expires)
    {
        if (_audit is null)
        {
            return;
        }

        var entry = new AuditEntry
        {
            Kind = AuditEntryKind.Approval,
            Time = _audit.Now,
            Session = request.Session,
            Grant = request.Grant,
            Id = request.RequestId,
            Rule = request.Rule,
            Reason = status == ApprovalStatus.Pending ? request.Reason : null,
            ApprovalId = id,
            ApprovalStatus = status,
            ApprovalVia = via,
            ApprovalBy = by,
            ApprovalNote = note,
            ApprovalScope = scope,
            ApprovalExpires = expires,
        };
        // The request line carries the arguments' hash (and the arguments with --audit-arguments), like a decision line.
        bool withArguments = status == ApprovalStatus.Pending || via == ApprovalChannel.Standing;
        entry.CaptureCall(Encoding.UTF8.GetBytes(request.Tool), withArguments ? request.RawArguments : default, withArguments);
        _audit.Record(ref entry);
    }

    // Session first (EndSession drops by prefix); the grant too, since sessions are not authentication.
    private static string StandingKey(string session, string grant, string tool, string sha256) => session + "\0" + grant + "\0" + tool + "\0" + sha256;

    private static string NewId()
    {
        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        return "apr_" + Convert.ToHexStringLower(random);
    }

    /// <summary>The wire name of a status (audit <c>status</c>, metrics <c>outcome</c>, admin JSON).</summary>
    public static string StatusName(ApprovalStatus status) => status switch
    {
        ApprovalStatus.Pending => "requested",
        ApprovalStatus.Approved => "approved",
        ApprovalStatus.Denied => "denied",
        ApprovalStatus.TimedOut => "timed_out",
        _ => "withdrawn",
    };

    /// <summary>The wire name of a channel (audit <c>via</c>).</summary>
    public static string ChannelName(ApprovalChannel via) => via switch
    {
        ApprovalChannel.Elicitation => "elicitation",
        ApprovalChannel.Admin => "admin",
        ApprovalChannel.Timeout => "timeout",
        ApprovalChannel.Cancel => "cancel",
        ApprovalChannel.SessionEnd => "session_end",
        _ => "standing",
    };

    /// <summary>The wire name of a scope.</summary>
    public static string ScopeName(ApprovalScope scope) => scope == ApprovalScope.Session ? "session" : "call";

    /// <summary>Parses <c>call</c> or <c>session</c>.</summary>
    public static bool TryParseScope(string? text, out ApprovalScope scope)
    {
        switch (text)
        {
            case null or "" or "call":
                scope = ApprovalScope.Call;
                return true;
            case "session":
                scope = ApprovalScope.Session;
                return true;
            default:
                scope = ApprovalScope.Call;
                return false;
        }
    }
}

/// <summary>A call held for approval.</summary>
public sealed class PendingApproval
{
    private readonly TaskCompletionSource<ApprovalOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal PendingApproval(string id, ApprovalRequest request, DateTimeOffset createdAt, DateTimeOffset expiresAt)
    {
        Id = id;
        Request = request;
        CreatedAt = createdAt;
        ExpiresAt = expiresAt;
    }

    /// <summary>The approval id (<c>apr_</c> and 32 hex digits).</summary>
    public string Id { get; }

    /// <summary>The grant that made the call.</summary>
    public string Grant => Request.Grant;

    /// <summary>The MCP session of the call.</summary>
    public string Session => Request.Session;

    /// <summary>The tool called.</summary>
    public string Tool => Request.Tool;

    /// <summary>The canonical arguments, at most <see cref="ApprovalBroker.MaxArgumentsRendering"/> bytes (cut with "…").</summary>
    public string Arguments => Request.Arguments;

    /// <summary>SHA-256 of the full canonical arguments.</summary>
    public string ArgumentsSha256 => Request.ArgumentsSha256;

    /// <summary>The rule that asked for approval (JSON pointer into the policy).</summary>
    public string Rule => Request.Rule;

    /// <summary>The rule's reason.</summary>
    public string Reason => Request.Reason;

    /// <summary>When the call was held.</summary>
    public DateTimeOffset CreatedAt { get; }

    /// <summary>When it times out.</summary>
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>Completes with the answer (continuations run asynchronously, never inside the answerer's call).</summary>
    public Task<ApprovalOutcome> Completion => _outcome.Task;

    internal ApprovalRequest Request { get; }

    internal ITimer? Timer { get; set; }

    internal void SetOutcome(in ApprovalOutcome outcome) => _outcome.TrySetResult(outcome);
}

/// <summary>The approval flow's log messages (stderr; ids and tool names only, never arguments).</summary>
internal static partial class ApprovalLog
{
    [LoggerMessage(60, LogLevel.Information, "Approval {Id} requested: tool {Tool}, session {Session}")]
    public static partial void Requested(ILogger logger, string id, string tool, string session);

    [LoggerMessage(61, LogLevel.Information, "Approval {Id} {Status} (via {Via})")]
    public static partial void Answered(ILogger logger, string id, string status, string via);

    [LoggerMessage(62, LogLevel.Warning, "Approval elicitation answer from the client could not be read: {Detail}")]
    public static partial void ElicitationUnreadable(ILogger logger, string detail);

    [LoggerMessage(63, LogLevel.Warning, "Too many calls wait for approval ({Max}); a call was denied at once")]
    public static partial void TooManyPending(ILogger logger, int max);
}
