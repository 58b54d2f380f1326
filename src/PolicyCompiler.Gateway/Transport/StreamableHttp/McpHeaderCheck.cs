using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>
/// The 2026-07-28 revision's routing headers (basic/transports, "Standard headers"): <c>Mcp-Method</c>
/// mirrors the body's <c>method</c>, <c>Mcp-Name</c> its <c>params.name</c> (tools/call, prompts/get) or
/// <c>params.uri</c> (resources/read); a value that is not plain ASCII is sent as <c>=?base64?…?=</c>.
/// A server or load balancer may route on the headers while the gateway decides on the body, so the
/// two must never disagree: a mismatch is refused with 400 and JSON-RPC error -32020 (HeaderMismatch).
/// Older clients send neither header; then there is nothing to check.
/// </summary>
internal static class McpHeaderCheck
{
    /// <summary>JSON-RPC error code of a header/body mismatch (2026-07-28, reserved range).</summary>
    public const int HeaderMismatch = -32020;

    /// <summary>
    /// Null when the headers agree with the body (or are absent), else why not. The body was already
    /// accepted by the strict classifier, so its top level and params have no duplicate keys.
    /// </summary>
    public static string? Check(in ReadOnlySequence<byte> message, string? methodHeader, string? nameHeader)
    {
        if (methodHeader is null && nameHeader is null)
        {
            return null;
        }

        ReadBody(message, out string? method, out string? name);
        if (method is null)
        {
            return "Header mismatch: Mcp-Method was sent with a message that has no method";
        }

        if (methodHeader is null || !string.Equals(methodHeader, method, StringComparison.Ordinal))
        {
            return "Header mismatch: Mcp-Method does not match the body's method";
        }

        bool named = method is "tools/call" or "prompts/get" or "resources/read";
        if (!named)
        {
            return nameHeader is null ? null : "Header mismatch: Mcp-Name was sent for a method that has no name";
        }

        if (nameHeader is null || Decode(nameHeader) is not { } decoded || !string.Equals(decoded, name, StringComparison.Ordinal))
        {
            return "Header mismatch: Mcp-Name does not match the body's name";
        }

        return null;
    }

    /// <summary>Decodes <c>=?base64?…?=</c>; plain values are returned as they are. Null when malformed.</summary>
    internal static string? Decode(string value)
    {
        const string Prefix = "=?base64?", Suffix = "?=";
        if (!value.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) || !value.EndsWith(Suffix, StringComparison.Ordinal) || value.Length < Prefix.Length + Suffix.Length)
        {
            return value;
        }

        ReadOnlySpan<char> encoded = value.AsSpan(Prefix.Length, value.Length - Prefix.Length - Suffix.Length);
        byte[] bytes = new byte[Base64.GetMaxDecodedFromUtf8Length(encoded.Length)];
        if (!Convert.TryFromBase64Chars(encoded, bytes, out int written))
        {
            return null;
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 0, written);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static void ReadBody(in ReadOnlySequence<byte> message, out string? method, out string? name)
    {
        method = null;
        string? paramsName = null, paramsUri = null;
        var reader = new Utf8JsonReader(message);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isMethod = reader.ValueTextEquals("method"u8);
            bool isParams = reader.ValueTextEquals("params"u8);
            reader.Read();
            if (isMethod && reader.TokenType == JsonTokenType.String)
            {
                method = reader.GetString();
            }
            else if (isParams && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    bool isName = reader.ValueTextEquals("name"u8);
                    bool isUri = reader.ValueTextEquals("uri"u8);
                    reader.Read();
                    if (isName && reader.TokenType == JsonTokenType.String)
                    {
                        paramsName = reader.GetString();
                    }
                    else if (isUri && reader.TokenType == JsonTokenType.String)
                    {
                        paramsUri = reader.GetString();
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Skip();
            }
        }

        // resources/read names its resource by uri; tools/call and prompts/get by name.
        name = method == "resources/read" ? paramsUri : paramsName;
    }
}
