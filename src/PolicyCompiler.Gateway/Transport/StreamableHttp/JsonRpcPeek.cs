using System.Buffers;
using System.Text.Json;
using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>Where a message a stdio child sends on its own belongs (docs/http.md, "A stdio server behind the HTTP gateway").</summary>
internal enum ChildMessageScope : byte
{
    /// <summary>A response: it goes to the stream of the request with its id.</summary>
    Response,
    /// <summary><c>notifications/progress</c>: to the stream of the request that carried its progress token.</summary>
    Progress,
    /// <summary>
    /// Something a server sends while it works on a request — a log message, its own request
    /// (<c>sampling/createMessage</c>, <c>elicitation/create</c>, <c>roots/list</c>, <c>ping</c>) or a
    /// cancellation of one: to a request stream in flight (MCP basic/transports#sending-messages-to-the-server:
    /// "the server MAY send JSON-RPC requests and notifications before sending the JSON-RPC response").
    /// </summary>
    RequestRelated,
    /// <summary>Anything else (list_changed, resources/updated...): to the GET stream ("unrelated to any request").</summary>
    Session,
}

/// <summary>
/// What the child-per-session bridge (<see cref="ChildProcessHandler"/>) reads from one JSON-RPC message to
/// route it: its id, whether it is a response, its method's scope, and the progress token (the
/// <c>params.progressToken</c> of a progress notification, or the <c>params._meta.progressToken</c> of a
/// request). One <see cref="Utf8JsonReader"/> pass over the message's bytes, whatever their segments; keys may
/// come in any order; names are compared after unescaping.
/// </summary>
internal readonly struct JsonRpcPeek
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 128 };

    private JsonRpcPeek(RequestId id, bool hasMethod, bool isInitialize, ChildMessageScope scope, RequestId progressToken)
    {
        Id = id;
        HasMethod = hasMethod;
        IsInitialize = isInitialize;
        Scope = scope;
        ProgressToken = progressToken;
    }

    /// <summary>The id (absent for notifications).</summary>
    public RequestId Id { get; }

    /// <summary>Whether the message has a method (a request or a notification).</summary>
    public bool HasMethod { get; }

    /// <summary>Whether the message is a request (a method and an id).</summary>
    public bool IsRequest => HasMethod && Id.HasValue;

    /// <summary>Whether the method is <c>initialize</c>.</summary>
    public bool IsInitialize { get; }

    /// <summary>Where the message goes when a child sends it.</summary>
    public ChildMessageScope Scope { get; }

    /// <summary>The progress token (see the type's summary); absent when there is none.</summary>
    public RequestId ProgressToken { get; }

    /// <summary>Reads <paramref name="message"/>; false when it is not a JSON object.</summary>
    public static bool TryRead(in ReadOnlySequence<byte> message, out JsonRpcPeek peek)
    {
        peek = default;
        try
        {
            var reader = new Utf8JsonReader(message, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            RequestId id = default;
            RequestId paramsToken = default;
            RequestId metaToken = default;
            bool hasMethod = false;
            MethodName method = MethodName.Other;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    if (reader.TokenType is JsonTokenType.String or JsonTokenType.Number)
                    {
                        id = RequestId.Read(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("method"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        hasMethod = true;
                        method = Classify(ref reader);
                    }
                }
                else if (reader.ValueTextEquals("params"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        ReadParams(ref reader, ref paramsToken, ref metaToken);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            ChildMessageScope scope = !hasMethod
                ? ChildMessageScope.Response
                : method switch
                {
                    MethodName.Progress => ChildMessageScope.Progress,
                    MethodName.RequestRelated => ChildMessageScope.RequestRelated,
                    _ => ChildMessageScope.Session,
                };
            peek = new JsonRpcPeek(id, hasMethod, method == MethodName.Initialize, scope, method == MethodName.Progress ? paramsToken : metaToken);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            // A string escape that decodes to invalid UTF-16 (RequestId.Read of a string id).
            return false;
        }
    }

    private enum MethodName : byte { Other, Initialize, Progress, RequestRelated }

    private static MethodName Classify(ref Utf8JsonReader reader)
    {
        if (reader.ValueTextEquals("initialize"u8))
        {
            return MethodName.Initialize;
        }

        if (reader.ValueTextEquals("notifications/progress"u8))
        {
            return MethodName.Progress;
        }

        return reader.ValueTextEquals("notifications/message"u8)
            || reader.ValueTextEquals("sampling/createMessage"u8)
            || reader.ValueTextEquals("elicitation/create"u8)
            || reader.ValueTextEquals("roots/list"u8)
            || reader.ValueTextEquals("ping"u8)
            || reader.ValueTextEquals("notifications/cancelled"u8)
            ? MethodName.RequestRelated
            : MethodName.Other;
    }

    /// <summary>At params' StartObject: reads <c>progressToken</c> and <c>_meta.progressToken</c>; ends at its EndObject.</summary>
    private static void ReadParams(ref Utf8JsonReader reader, ref RequestId paramsToken, ref RequestId metaToken)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("progressToken"u8))
            {
                reader.Read();
                paramsToken = ReadToken(ref reader);
            }
            else if (reader.ValueTextEquals("_meta"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    bool isToken = reader.ValueTextEquals("progressToken"u8);
                    reader.Read();
                    if (isToken)
                    {
                        metaToken = ReadToken(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static RequestId ReadToken(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is JsonTokenType.String or JsonTokenType.Number)
        {
            return RequestId.Read(ref reader);
        }

        reader.Skip();
        return default;
    }
}
