using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Framing;

/// <summary>
/// Writes the messages the gateway itself sends to the client: JSON-RPC errors and the result of a
/// blocked tool call. One instance per writing loop (reuses its <see cref="Utf8JsonWriter"/> and text
/// buffer, so a reply allocates nothing).
/// </summary>
internal sealed class ReplyWriter
{
    /// <summary>The <c>_meta</c> key carrying the decision of a blocked call (docs/gateway.md).</summary>
    public static ReadOnlySpan<byte> DecisionMetaKey => "policycompiler/decision"u8;

    // Relaxed escaping keeps the reason readable in raw logs (quotes and apostrophes stay literal); still valid JSON.
    private readonly Utf8JsonWriter _json = new(Stream.Null, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    private byte[] _text = new byte[256];
    private int _textLength;

    /// <summary>Writes a JSON-RPC error response and its newline.</summary>
    public void WriteError(IBufferWriter<byte> output, in RequestId id, int code, string message)
    {
        _json.Reset(output);
        _json.WriteStartObject();
        _json.WriteString("jsonrpc"u8, "2.0"u8);
        _json.WritePropertyName("id"u8);
        id.WriteTo(_json);
        _json.WriteStartObject("error"u8);
        _json.WriteNumber("code"u8, code);
        _json.WriteString("message"u8, message);
        _json.WriteEndObject();
        _json.WriteEndObject();
        _json.Flush();
        WriteNewline(output);
    }

    /// <summary>
    /// Writes the answer to a tools/call the policy blocked: a <c>CallToolResult</c> with <c>isError: true</c>
    /// (MCP server/tools#error-handling: errors the model should see are results, not protocol errors),
    /// whose text names the tool, the reason and when to retry, and the decision under <see cref="DecisionMetaKey"/>.
    /// </summary>
    /// <param name="output">Where to write.</param>
    /// <param name="id">The request's id.</param>
    /// <param name="toolName">The decoded tool name.</param>
    /// <param name="decision">The decision (deny, rate-limited or approval-required).</param>
    /// <param name="reason">The reason to show (the decision's, or the gateway's own).</param>
    public void WriteBlocked(IBufferWriter<byte> output, in RequestId id, ReadOnlySpan<byte> toolName, in Decision decision, string reason)
    {
        _textLength = 0;
        AppendText("Blocked by policy: tool '"u8);
        AppendText(toolName);
        switch (decision.Kind)
        {
            case DecisionKind.RateLimited:
                AppendText("' is rate limited: "u8);
                break;
            case DecisionKind.ApprovalRequired:
                AppendText("' requires approval: "u8);
                break;
            default:
                AppendText("' was denied: "u8);
                break;
        }

        AppendText(reason);
        long retrySeconds = RetryAfterSeconds(decision);
        if (decision.Kind == DecisionKind.RateLimited)
        {
            if (retrySeconds >= 0)
            {
                AppendText(" (retry after "u8);
                AppendNumber(retrySeconds);
                AppendText(" s)"u8);
            }
            else
            {
                AppendText(" (the call alone exceeds the limit; retrying will not help)"u8);
            }
        }

        _json.Reset(output);
        _json.WriteStartObject();
        _json.WriteString("jsonrpc"u8, "2.0"u8);
        _json.WritePropertyName("id"u8);
        id.WriteTo(_json);
        _json.WriteStartObject("result"u8);
        _json.WriteStartArray("content"u8);
        _json.WriteStartObject();
        _json.WriteString("type"u8, "text"u8);
        _json.WriteString("text"u8, _text.AsSpan(0, _textLength));
        _json.WriteEndObject();
        _json.WriteEndArray();
        _json.WriteBoolean("isError"u8, true);
        _json.WriteStartObject("_meta"u8);
        _json.WriteStartObject(DecisionMetaKey);
        _json.WriteString("decision"u8, DecisionName(decision.Kind));
        _json.WriteString("rule"u8, decision.Rule);
        _json.WriteString("reason"u8, reason);
        if (decision.Counter is not null)
        {
            _json.WriteString("counter"u8, decision.Counter);
        }

        if (decision.Kind == DecisionKind.RateLimited)
        {
            if (retrySeconds >= 0)
            {
                _json.WriteNumber("retryAfterSeconds"u8, retrySeconds);
            }
            else
            {
                _json.WriteNull("retryAfterSeconds"u8);
            }
        }

        _json.WriteEndObject();
        _json.WriteEndObject();
        _json.WriteEndObject();
        _json.WriteEndObject();
        _json.Flush();
        WriteNewline(output);
    }

    /// <summary>The wire name of a decision (the same in <c>_meta</c> and in the audit log).</summary>
    public static ReadOnlySpan<byte> DecisionName(DecisionKind kind) => kind switch
    {
        DecisionKind.Allow => "allow"u8,
        DecisionKind.RateLimited => "rate_limited"u8,
        DecisionKind.ApprovalRequired => "approval_required"u8,
        _ => "deny"u8,
    };

    /// <summary>Whole seconds until a slot frees, rounded up; -1 when never.</summary>
    public static long RetryAfterSeconds(in Decision decision)
    {
        if (decision.RetryAfter == TimeSpan.MaxValue)
        {
            return -1;
        }

        return (long)Math.Ceiling(Math.Max(0, decision.RetryAfter.TotalSeconds));
    }

    private static void WriteNewline(IBufferWriter<byte> output)
    {
        output.GetSpan(1)[0] = (byte)'\n';
        output.Advance(1);
    }

    private void AppendText(ReadOnlySpan<byte> utf8)
    {
        EnsureText(utf8.Length);
        utf8.CopyTo(_text.AsSpan(_textLength));
        _textLength += utf8.Length;
    }

    private void AppendText(string text)
    {
        EnsureText(Encoding.UTF8.GetMaxByteCount(text.Length));
        _textLength += Encoding.UTF8.GetBytes(text, _text.AsSpan(_textLength));
    }

    private void AppendNumber(long value)
    {
        EnsureText(20);
        value.TryFormat(_text.AsSpan(_textLength), out int written, default, CultureInfo.InvariantCulture);
        _textLength += written;
    }

    private void EnsureText(int extra)
    {
        if (_textLength + extra > _text.Length)
        {
            Array.Resize(ref _text, Math.Max(_text.Length * 2, _textLength + extra));
        }
    }
}
