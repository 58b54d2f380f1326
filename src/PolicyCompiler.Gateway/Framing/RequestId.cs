using System.Text.Json;

namespace PolicyCompiler.Gateway.Framing;

/// <summary>
/// A JSON-RPC request id (MCP: a string or an integer, never null; basic#requests). Integer ids — what
/// the MCP SDKs send — are held without allocation; string ids (and non-integer numbers, kept as their
/// text) allocate one string. Two ids are equal when the JSON values are equal: <c>"a"</c> and
/// <c>"\u0061"</c> are the same id, <c>1</c> and <c>"1"</c> are not.
/// </summary>
internal readonly struct RequestId : IEquatable<RequestId>
{
    private enum IdKind : byte { None, Integer, String, OtherNumber }

    private readonly long _integer;
    private readonly string? _text;
    private readonly IdKind _kind;

    private RequestId(IdKind kind, long integer, string? text)
    {
        _kind = kind;
        _integer = integer;
        _text = text;
    }

    /// <summary>Whether an id is present (a request or response, not a notification).</summary>
    public bool HasValue => _kind != IdKind.None;

    /// <summary>An integer id.</summary>
    public static RequestId FromInteger(long value) => new(IdKind.Integer, value, null);

    /// <summary>A string id.</summary>
    public static RequestId FromString(string value) => new(IdKind.String, 0, value);

    /// <summary>Reads the id at the reader's current token (a string or a number).</summary>
    public static RequestId Read(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return new(IdKind.String, 0, reader.GetString());
        }

        if (reader.TryGetInt64(out long integer))
        {
            return new(IdKind.Integer, integer, null);
        }

        // A fractional or huge number: keep its text (JSON-RPC discourages fractional ids; we still echo them).
        string text = reader.HasValueSequence
            ? System.Text.Encoding.UTF8.GetString(System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence))
            : System.Text.Encoding.UTF8.GetString(reader.ValueSpan);
        return new(IdKind.OtherNumber, 0, text);
    }

    /// <summary>Writes the id as a JSON value (<c>null</c> when absent, as JSON-RPC requires for unknown ids).</summary>
    public void WriteTo(Utf8JsonWriter writer)
    {
        switch (_kind)
        {
            case IdKind.Integer: writer.WriteNumberValue(_integer); break;
            case IdKind.String: writer.WriteStringValue(_text); break;
            case IdKind.OtherNumber: writer.WriteRawValue(_text!, skipInputValidation: false); break;
            default: writer.WriteNullValue(); break;
        }
    }

    /// <summary>Whether this is a string id starting with <paramref name="prefix"/> (the gateway's own request ids).</summary>
    public bool IsStringWithPrefix(string prefix) =>
        _kind == IdKind.String && _text!.StartsWith(prefix, StringComparison.Ordinal);

    /// <inheritdoc/>
    public bool Equals(RequestId other) =>
        _kind == other._kind && _integer == other._integer && string.Equals(_text, other._text, StringComparison.Ordinal);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is RequestId other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _kind == IdKind.Integer
        ? _integer.GetHashCode()
        : HashCode.Combine(_kind, _text is null ? 0 : StringComparer.Ordinal.GetHashCode(_text));

    /// <inheritdoc/>
    public override string ToString() => _kind switch
    {
        IdKind.Integer => _integer.ToString(System.Globalization.CultureInfo.InvariantCulture),
        IdKind.String => "\"" + _text + "\"",
        IdKind.OtherNumber => _text!,
        _ => "null",
    };
}
