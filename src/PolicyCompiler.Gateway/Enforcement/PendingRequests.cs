using System.Buffers;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Enforcement;

/// <summary>A client request forwarded upstream and not yet answered.</summary>
internal struct PendingRequest
{
    /// <summary>What the response needs: a reservation commit (tools/call), filtering (tools/list), or nothing.</summary>
    public KnownMethod Method;

    /// <summary>The counters an allowed call reserved: committed on the response, rolled back if none comes.</summary>
    public CounterReservation Reservation;

    /// <summary>When the call was forwarded (<see cref="System.Diagnostics.Stopwatch"/> ticks), for the audited latency.</summary>
    public long ForwardedAt;

    /// <summary>The tool name (rented; only when audited), for the upstream audit line.</summary>
    public byte[]? ToolName;

    /// <summary>Length of <see cref="ToolName"/>.</summary>
    public int ToolNameLength;

    /// <summary>Returns the rented name.</summary>
    public void Release()
    {
        if (ToolName is not null)
        {
            ArrayPool<byte>.Shared.Return(ToolName);
            ToolName = null;
        }
    }
}

/// <summary>
/// The client's requests in flight, keyed by id. Only the client→server direction is tracked: a
/// response coming from the server answers a client request, while a response coming from the client
/// answers one of the server's own requests (sampling, elicitation, roots/list), whose ids live in a
/// separate space and may collide with the client's (JSON-RPC ids are unique per sender only).
/// Shared by the two forwarding loops, so every operation takes a short lock.
/// </summary>
internal sealed class PendingRequests
{
    /// <summary>How many cancelled tools/list ids are remembered, so a late response is still filtered.</summary>
    internal const int CancelledListCapacity = 16;

    private readonly Dictionary<RequestId, PendingRequest> _pending = new();
    private readonly Lock _gate = new();
    private readonly RequestId[] _cancelledLists = new RequestId[CancelledListCapacity];
    private int _nextCancelledList;
    private bool _closed;

    /// <summary>How many requests wait for an answer.</summary>
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

    /// <summary>Adds a request. False when the id is already in flight or the upstream has closed.</summary>
    public AddResult TryAdd(in RequestId id, in PendingRequest request)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return AddResult.Closed;
            }

            return _pending.TryAdd(id, request) ? AddResult.Added : AddResult.Duplicate;
        }
    }

    /// <summary>Whether <paramref name="id"/> is in flight.</summary>
    public bool Contains(in RequestId id)
    {
        lock (_gate)
        {
            return _pending.ContainsKey(id);
        }
    }

    /// <summary>Takes the request a response answers.</summary>
    public bool TryRemove(in RequestId id, out PendingRequest request)
    {
        lock (_gate)
        {
            return _pending.Remove(id, out request);
        }
    }

    /// <summary>
    /// Remembers a cancelled tools/list (bounded: the oldest is forgotten first). The server should not
    /// answer it (basic/utilities/cancellation), but if it does, the answer must still be filtered:
    /// hidden tools stay hidden whatever the timing.
    /// </summary>
    public void RememberCancelledList(in RequestId id)
    {
        lock (_gate)
        {
            _cancelledLists[_nextCancelledList] = id;
            _nextCancelledList = (_nextCancelledList + 1) % CancelledListCapacity;
        }
    }

    /// <summary>Whether <paramref name="id"/> is a remembered cancelled tools/list; forgets it.</summary>
    public bool TryTakeCancelledList(in RequestId id)
    {
        lock (_gate)
        {
            for (int i = 0; i < _cancelledLists.Length; i++)
            {
                if (_cancelledLists[i].HasValue && _cancelledLists[i].Equals(id))
                {
                    _cancelledLists[i] = default;
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>Refuses further requests and hands back every one still waiting.</summary>
    public int Close(List<KeyValuePair<RequestId, PendingRequest>> drained)
    {
        lock (_gate)
        {
            _closed = true;
            foreach (KeyValuePair<RequestId, PendingRequest> entry in _pending)
            {
                drained.Add(entry);
            }

            _pending.Clear();
            return drained.Count;
        }
    }
}

/// <summary>The outcome of <see cref="PendingRequests.TryAdd"/>.</summary>
internal enum AddResult : byte
{
    /// <summary>Tracked.</summary>
    Added,
    /// <summary>A request with the same id is already in flight.</summary>
    Duplicate,
    /// <summary>The upstream has closed: nothing more will be answered.</summary>
    Closed,
}
