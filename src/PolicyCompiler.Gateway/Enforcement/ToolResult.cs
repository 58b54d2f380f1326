using System.Buffers;
using System.Text.Json;

namespace PolicyCompiler.Gateway.Enforcement;

/// <summary>Reads a <c>CallToolResult</c>'s <c>isError</c> (MCP server/tools#error-handling) for the audit log.</summary>
internal static class ToolResult
{
    /// <summary>Whether the result object at the given range has <c>"isError": true</c> at its top level.</summary>
    public static bool IsError(in ReadOnlySequence<byte> message, long resultStart, long resultLength)
    {
        if (resultLength <= 0)
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(message.Slice(resultStart, resultLength));
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isError = reader.ValueTextEquals("isError"u8);
                reader.Read();
                if (isError)
                {
                    return reader.TokenType == JsonTokenType.True;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }

        return false;
    }
}
