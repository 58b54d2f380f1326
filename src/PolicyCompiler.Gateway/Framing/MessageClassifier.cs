using System.Buffers;
using System.Text.Json;

namespace PolicyCompiler.Gateway.Framing;

/// <summary>The outcome of classifying one message.</summary>
internal enum ClassifyStatus : byte
{
    /// <summary>A well-formed request, notification or response.</summary>
    Ok,
    /// <summary>A blank line: not a message, dropped.</summary>
    Empty,
    /// <summary>Not JSON (JSON-RPC -32700, id null).</summary>
    ParseError,
    /// <summary>A JSON array: batches were removed from MCP in 2025-06-18 (JSON-RPC -32600, id null).</summary>
    Batch,
    /// <summary>Not a valid JSON-RPC message (-32600).</summary>
    InvalidRequest,
    /// <summary>A key occurs twice in an object the gateway must read unambiguously (-32600).</summary>
    DuplicateKey,
    /// <summary>The params are not what the method requires (-32602).</summary>
    InvalidParams,
}

/// <summary>What kind of JSON-RPC message a line holds.</summary>
internal enum MessageKind : byte
{
    /// <summary>A request: method and id.</summary>
    Request,
    /// <summary>A notification: method, no id.</summary>
    Notification,
    /// <summary>A response: id and result or error, no method.</summary>
    Response,
}

/// <summary>The methods the gateway acts on.</summary>
internal enum KnownMethod : byte
{
    /// <summary>Anything else: forwarded untouched.</summary>
    Other,
    /// <summary><c>tools/call</c>: decided by the policy.</summary>
    ToolsCall,
    /// <summary><c>tools/list</c>: its response is filtered.</summary>
    ToolsList,
    /// <summary><c>notifications/cancelled</c>: the client gave up on one of its requests (basic/utilities/cancellation).</summary>
    Cancelled,
}

/// <summary>
/// Reads only what a decision needs from one JSON-RPC message — <c>method</c>, <c>id</c>,
/// <c>params.name</c>, <c>params.arguments</c> (raw bytes), and where <c>result</c> lies — with one
/// <see cref="Utf8JsonReader"/> over the message's <see cref="ReadOnlySequence{T}"/>, whatever the segment
/// boundaries. Names are compared after unescaping: the policy sees exactly the name the server will see.
/// <para>
/// In strict mode (messages from the client) it also rejects what could be read two ways: duplicate
/// keys at the top level and in <c>params</c>, and anywhere inside <c>params.arguments</c> of a
/// <c>tools/call</c>; a tools/call whose params, name or arguments have the wrong type.
/// </para>
/// One instance per direction, reused for every message: no allocation in steady state (string
/// request ids excepted, see <see cref="RequestId"/>). Results stay valid until the next call.
/// </summary>
internal sealed class MessageClassifier
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 128 };

    private readonly DuplicateKeyDetector _keys = new();
    private byte[] _keyScratch = new byte[64];
    private byte[] _methodScratch = new byte[64];
    private byte[] _name = new byte[128];
    private int _nameLength;
    private byte[]? _argumentsCopy;
    private ReadOnlyMemory<byte> _arguments;
    private ClassifyStatus _failure;
    private string _detail = string.Empty;

    /// <summary>Request, notification or response (valid when the status is <see cref="ClassifyStatus.Ok"/>).</summary>
    public MessageKind Kind { get; private set; }

    /// <summary>The method, when the gateway acts on it.</summary>
    public KnownMethod Method { get; private set; }

    /// <summary>The id (absent for notifications and when it could not be read).</summary>
    public RequestId Id { get; private set; }

    /// <summary>The decoded tool name of a tools/call (UTF-8).</summary>
    public ReadOnlySpan<byte> ToolName => _name.AsSpan(0, _nameLength);

    /// <summary>The raw JSON of a tools/call's <c>params.arguments</c>, or empty when absent.</summary>
    public ReadOnlySpan<byte> ArgumentsJson => _arguments.Span;

    /// <summary>The <c>params.requestId</c> of a <c>notifications/cancelled</c> (strict mode only; absent when missing or not a string or number).</summary>
    public RequestId CancelledId { get; private set; }

    /// <summary>Whether a response carries <c>result</c>.</summary>
    public bool HasResult { get; private set; }

    /// <summary>Whether a response carries <c>error</c>.</summary>
    public bool HasError { get; private set; }

    /// <summary>Offset of the <c>result</c> value in the message.</summary>
    public long ResultStart { get; private set; }

    /// <summary>Length of the <c>result</c> value in the message.</summary>
    public long ResultLength { get; private set; }

    /// <summary>Why the message was refused (a constant; shown to the client in the JSON-RPC error).</summary>
    public string Detail => _detail;

    /// <summary>Classifies <paramref name="message"/>; <paramref name="strict"/> for messages from the client.</summary>
    public ClassifyStatus Classify(in ReadOnlySequence<byte> message, bool strict)
    {
        Kind = MessageKind.Response; // only a message with a method and no id is a notification (never answered)
        Method = KnownMethod.Other;
        Id = default;
        CancelledId = default;
        _nameLength = 0;
        _arguments = default;
        HasResult = HasError = false;
        ResultStart = ResultLength = 0;
        _failure = ClassifyStatus.Ok;
        _detail = string.Empty;
        _keys.Reset();

        try
        {
            return ClassifyCore(message, strict);
        }
        catch (JsonException)
        {
            Id = default;
            return IsBlank(message) ? ClassifyStatus.Empty : Fail(ClassifyStatus.ParseError, "Parse error: the message is not valid JSON");
        }
        catch (InvalidOperationException)
        {
            // Raised by CopyString for escapes that decode to invalid UTF-16 (a lone surrogate).
            Id = default;
            return Fail(ClassifyStatus.ParseError, "Parse error: the message contains an invalid string escape");
        }
    }

    private ClassifyStatus ClassifyCore(in ReadOnlySequence<byte> message, bool strict)
    {
        var reader = new Utf8JsonReader(message, ReaderOptions);
        if (!reader.Read())
        {
            return ClassifyStatus.Empty;
        }

        if (reader.TokenType == JsonTokenType.StartArray)
        {
            // Still parse it all: a malformed array is a parse error first (JSON-RPC 2.0 §6).
            reader.Skip();
            EnsureEnd(ref reader);
            return Fail(ClassifyStatus.Batch, "Invalid Request: JSON-RPC batches are not supported (removed from MCP in 2025-06-18)");
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            EnsureEnd(ref reader);
            return Fail(ClassifyStatus.InvalidRequest, "Invalid Request: a message must be a JSON object");
        }

        _keys.EnterObject();
        bool hasMethod = false, hasId = false, methodKnown = false;
        long paramsStart = -1, paramsLength = 0;
        JsonTokenType paramsToken = JsonTokenType.None;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            ReadOnlySpan<byte> key = Unescape(ref reader, ref _keyScratch);
            if (strict && !_keys.TryAdd(key))
            {
                Note(ClassifyStatus.DuplicateKey, "Invalid Request: duplicate key at the top level of the message");
            }

            if (key.SequenceEqual("method"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.String)
                {
                    Note(ClassifyStatus.InvalidRequest, "Invalid Request: method must be a string");
                    reader.Skip();
                    continue;
                }

                hasMethod = true;
                ReadOnlySpan<byte> method = Unescape(ref reader, ref _methodScratch);
                Method = method.SequenceEqual("tools/call"u8) ? KnownMethod.ToolsCall
                    : method.SequenceEqual("tools/list"u8) ? KnownMethod.ToolsList
                    : method.SequenceEqual("notifications/cancelled"u8) ? KnownMethod.Cancelled
                    : KnownMethod.Other;
                methodKnown = true;
            }
            else if (key.SequenceEqual("id"u8))
            {
                reader.Read();
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.Number)
                {
                    hasId = true;
                    Id = RequestId.Read(ref reader);
                }
                else if (reader.TokenType == JsonTokenType.Null)
                {
                    hasId = true; // a response to an unparseable request carries id null
                }
                else
                {
                    Note(ClassifyStatus.InvalidRequest, "Invalid Request: id must be a string or a number");
                    reader.Skip();
                }
            }
            else if (key.SequenceEqual("params"u8))
            {
                reader.Read();
                paramsToken = reader.TokenType;
                if (strict && methodKnown && paramsToken == JsonTokenType.StartObject)
                {
                    // The usual order (method before params): check params in the same pass.
                    ReadParams(ref reader, message);
                    paramsStart = -2;
                }
                else
                {
                    paramsStart = reader.TokenStartIndex;
                    reader.Skip();
                    paramsLength = reader.BytesConsumed - paramsStart;
                }
            }
            else if (key.SequenceEqual("result"u8))
            {
                reader.Read();
                HasResult = true;
                ResultStart = reader.TokenStartIndex;
                reader.Skip();
                ResultLength = reader.BytesConsumed - ResultStart;
            }
            else if (key.SequenceEqual("error"u8))
            {
                reader.Read();
                HasError = true;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        _keys.ExitObject();
        EnsureEnd(ref reader);

        if (hasMethod)
        {
            Kind = hasId ? MessageKind.Request : MessageKind.Notification;
            if (hasId && !Id.HasValue)
            {
                Note(ClassifyStatus.InvalidRequest, "Invalid Request: a request id must not be null (MCP basic#requests)");
            }
            else if (!hasId && Method == KnownMethod.ToolsCall)
            {
                // A tools/call without an id is never decided (nothing could carry the answer), so it must not
                // pass as a notification either: a lenient server might still run the tool. Dropped, never forwarded.
                Note(ClassifyStatus.InvalidRequest, "Invalid Request: tools/call is a request and needs an id (a tools/call notification is never forwarded)");
            }
        }
        else if (hasId && (HasResult || HasError))
        {
            Kind = MessageKind.Response;
        }
        else
        {
            Note(ClassifyStatus.InvalidRequest, "Invalid Request: neither a request, a notification nor a response");
        }

        if (strict && hasMethod && _failure == ClassifyStatus.Ok)
        {
            if (paramsToken is not (JsonTokenType.None or JsonTokenType.StartObject))
            {
                Note(ClassifyStatus.InvalidParams, "Invalid params: params must be an object");
            }
            else if (paramsStart >= 0)
            {
                // params came before method: read them now that the method is known.
                ReadOnlySequence<byte> slice = message.Slice(paramsStart, paramsLength);
                var paramsReader = new Utf8JsonReader(slice, ReaderOptions);
                paramsReader.Read();
                ReadParams(ref paramsReader, slice);
            }
            else if (paramsToken == JsonTokenType.None && Method == KnownMethod.ToolsCall)
            {
                Note(ClassifyStatus.InvalidParams, "Invalid params: tools/call requires params with a name");
            }
        }

        return _failure;
    }

    /// <summary>Reads a params object (reader on its StartObject): first-level duplicates, a tools/call's name and arguments, a cancellation's request id.</summary>
    private void ReadParams(ref Utf8JsonReader reader, in ReadOnlySequence<byte> source)
    {
        bool isCall = Method == KnownMethod.ToolsCall;
        bool isCancellation = Method == KnownMethod.Cancelled;
        bool hasName = false;
        _keys.EnterObject();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            ReadOnlySpan<byte> key = Unescape(ref reader, ref _keyScratch);
            if (!_keys.TryAdd(key))
            {
                Note(ClassifyStatus.DuplicateKey, "Invalid Request: duplicate key in params");
            }

            if (isCancellation && key.SequenceEqual("requestId"u8))
            {
                reader.Read();
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.Number)
                {
                    CancelledId = RequestId.Read(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (isCall && key.SequenceEqual("name"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.String)
                {
                    Note(ClassifyStatus.InvalidParams, "Invalid params: the tool name must be a string");
                    reader.Skip();
                    continue;
                }

                hasName = true;
                ReadOnlySpan<byte> name = Unescape(ref reader, ref _keyScratch);
                if (_name.Length < name.Length)
                {
                    _name = new byte[Math.Max(_name.Length * 2, name.Length)];
                }

                name.CopyTo(_name);
                _nameLength = name.Length;
                if (!System.Text.Unicode.Utf8.IsValid(name))
                {
                    Note(ClassifyStatus.InvalidParams, "Invalid params: the tool name is not valid UTF-8");
                }
            }
            else if (isCall && key.SequenceEqual("arguments"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ReadArguments(ref reader, source);
                }
                else if (reader.TokenType != JsonTokenType.Null)
                {
                    Note(ClassifyStatus.InvalidParams, "Invalid params: arguments must be an object");
                    reader.Skip();
                }
            }
            else
            {
                if (isCall && (AsciiEqualsIgnoreCase(key, "name"u8) || AsciiEqualsIgnoreCase(key, "arguments"u8)))
                {
                    // A server that matches names case-insensitively would read this instead of the real key.
                    Note(ClassifyStatus.InvalidParams, "Invalid params: a key differs from 'name' or 'arguments' only by case");
                }

                reader.Read();
                reader.Skip();
            }
        }

        _keys.ExitObject();
        if (isCall && !hasName)
        {
            Note(ClassifyStatus.InvalidParams, "Invalid params: tools/call requires a string name");
        }
    }

    /// <summary>Walks the arguments object (reader on its StartObject), checking every nested object for duplicate keys, and captures its raw bytes.</summary>
    private void ReadArguments(ref Utf8JsonReader reader, in ReadOnlySequence<byte> source)
    {
        long start = reader.TokenStartIndex;
        int depth = reader.CurrentDepth;
        _keys.EnterObject();
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    _keys.EnterObject();
                    break;
                case JsonTokenType.EndObject:
                    _keys.ExitObject();
                    if (reader.CurrentDepth == depth)
                    {
                        goto Done;
                    }

                    break;
                case JsonTokenType.PropertyName:
                    if (!_keys.TryAdd(Unescape(ref reader, ref _keyScratch)))
                    {
                        Note(ClassifyStatus.DuplicateKey, "Invalid params: duplicate key in the tool arguments");
                    }

                    break;
            }
        }

    Done:
        ReadOnlySequence<byte> raw = source.Slice(start, reader.BytesConsumed - start);
        if (raw.IsSingleSegment)
        {
            _arguments = raw.First;
        }
        else
        {
            // Split across segments: the evaluator needs one span, so copy into a buffer kept for reuse.
            int length = checked((int)raw.Length);
            if (_argumentsCopy is null || _argumentsCopy.Length < length)
            {
                if (_argumentsCopy is not null)
                {
                    ArrayPool<byte>.Shared.Return(_argumentsCopy);
                }

                _argumentsCopy = ArrayPool<byte>.Shared.Rent(length);
            }

            raw.CopyTo(_argumentsCopy);
            _arguments = _argumentsCopy.AsMemory(0, length);
        }
    }

    /// <summary>
    /// Reads the id from the first bytes of a message too large to parse, so the error can name the
    /// request. Only top-level keys before the first incomplete token are seen; absent → no id.
    /// </summary>
    public RequestId PeekId(in ReadOnlySequence<byte> prefix)
    {
        try
        {
            var reader = new Utf8JsonReader(prefix, isFinalBlock: false, state: new JsonReaderState(ReaderOptions));
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return default;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isId = !reader.ValueIsEscaped && !reader.HasValueSequence && reader.ValueSpan.SequenceEqual("id"u8);
                if (!reader.Read())
                {
                    return default;
                }

                if (isId)
                {
                    return reader.TokenType is JsonTokenType.String or JsonTokenType.Number ? RequestId.Read(ref reader) : default;
                }

                if (!reader.TrySkip())
                {
                    return default;
                }
            }
        }
        catch (JsonException)
        {
        }
        catch (InvalidOperationException)
        {
        }

        return default;
    }

    private void Note(ClassifyStatus status, string detail)
    {
        if (_failure == ClassifyStatus.Ok)
        {
            _failure = status;
            _detail = detail;
        }
    }

    private ClassifyStatus Fail(ClassifyStatus status, string detail)
    {
        _failure = status;
        _detail = detail;
        return status;
    }

    /// <summary>Whether a line holds only JSON whitespace (the reader refuses an empty document).</summary>
    private static bool IsBlank(in ReadOnlySequence<byte> message)
    {
        foreach (ReadOnlyMemory<byte> segment in message)
        {
            if (segment.Span.IndexOfAnyExcept(" \t\r\n"u8) >= 0)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Anything after the one top-level value is an error (the reader throws on it).</summary>
    private static void EnsureEnd(ref Utf8JsonReader reader)
    {
        while (reader.Read())
        {
        }
    }

    /// <summary>The current string or property name, unescaped, as UTF-8 (a view of the reader's data when possible).</summary>
    private static ReadOnlySpan<byte> Unescape(ref Utf8JsonReader reader, ref byte[] scratch)
    {
        if (!reader.ValueIsEscaped && !reader.HasValueSequence)
        {
            return reader.ValueSpan;
        }

        long length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        if (scratch.Length < length)
        {
            scratch = new byte[Math.Max(scratch.Length * 2, (int)length)];
        }

        int written = reader.CopyString(scratch);
        return scratch.AsSpan(0, written);
    }

    private static bool AsciiEqualsIgnoreCase(ReadOnlySpan<byte> value, ReadOnlySpan<byte> lowerCase) =>
        System.Text.Ascii.EqualsIgnoreCase(value, lowerCase);
}
