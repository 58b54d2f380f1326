using System.Buffers;
using System.Globalization;
using System.Text.Json;
using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Enforcement.Approvals;

/// <summary>What a person answered in the client's elicitation form.</summary>
/// <param name="Approve">Whether the call may go on (accept with decision <c>approve</c>).</param>
/// <param name="Note">The note typed in the form, or a word on what the client did (declined, cancelled).</param>
/// <param name="Scope">This call only, or the rest of the session for the same tool and arguments.</param>
internal readonly record struct ElicitationAnswer(bool Approve, string? Note, ApprovalScope Scope);

/// <summary>
/// The JSON messages of the approval flow that the gateway itself sends or reads: the
/// <c>elicitation/create</c> request (MCP client/elicitation, form mode: a flat object of primitive
/// properties), its cancellation, and the client's answer. Not on the hot path (one per held call).
/// </summary>
internal static class ApprovalMessages
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Writes the <c>elicitation/create</c> request that asks the client's user to approve <paramref name="approval"/>,
    /// and its newline. The schema (client/elicitation#requested-schema) is flat: <c>decision</c>
    /// (approve/deny, required), <c>note</c> and <c>scope</c> (call/session) optional.
    /// </summary>
    public static void WriteElicitationRequest(IBufferWriter<byte> output, in RequestId id, PendingApproval approval)
    {
        using var json = new Utf8JsonWriter(output, WriterOptions);
        json.WriteStartObject();
        json.WriteString("jsonrpc"u8, "2.0"u8);
        json.WritePropertyName("id"u8);
        id.WriteTo(json);
        json.WriteString("method"u8, "elicitation/create"u8);
        json.WriteStartObject("params"u8);
        json.WriteString("message"u8, Describe(approval));
        json.WriteStartObject("requestedSchema"u8);
        json.WriteString("type"u8, "object"u8);
        json.WriteStartObject("properties"u8);
        json.WriteStartObject("decision"u8);
        json.WriteString("type"u8, "string"u8);
        json.WriteString("title"u8, "Decision"u8);
        json.WriteString("description"u8, "approve forwards the call to the server exactly as the agent sent it; deny refuses it"u8);
        json.WriteStartArray("enum"u8);
        json.WriteStringValue("approve"u8);
        json.WriteStringValue("deny"u8);
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteStartObject("note"u8);
        json.WriteString("type"u8, "string"u8);
        json.WriteString("title"u8, "Note"u8);
        json.WriteString("description"u8, "Optional: recorded in the audit log and shown to the agent when denied"u8);
        json.WriteNumber("maxLength"u8, 500);
        json.WriteEndObject();
        json.WriteStartObject("scope"u8);
        json.WriteString("type"u8, "string"u8);
        json.WriteString("title"u8, "Scope"u8);
        json.WriteString("description"u8, "call: this call only; session: also later calls in this session to the same tool with the same arguments"u8);
        json.WriteStartArray("enum"u8);
        json.WriteStringValue("call"u8);
        json.WriteStringValue("session"u8);
        json.WriteEndArray();
        json.WriteString("default"u8, "call"u8);
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteStartArray("required"u8);
        json.WriteStringValue("decision"u8);
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndObject();
        json.Flush();
        WriteNewline(output);
    }

    /// <summary>Writes <c>notifications/cancelled</c> for the gateway's own request <paramref name="id"/> (basic/utilities/cancellation) and its newline.</summary>
    public static void WriteCancelled(IBufferWriter<byte> output, in RequestId id, string reason)
    {
        using var json = new Utf8JsonWriter(output, WriterOptions);
        json.WriteStartObject();
        json.WriteString("jsonrpc"u8, "2.0"u8);
        json.WriteString("method"u8, "notifications/cancelled"u8);
        json.WriteStartObject("params"u8);
        json.WritePropertyName("requestId"u8);
        id.WriteTo(json);
        json.WriteString("reason"u8, reason);
        json.WriteEndObject();
        json.WriteEndObject();
        json.Flush();
        WriteNewline(output);
    }

    /// <summary>The text a person reads before answering: tool, arguments, reason, rule, id and deadline.</summary>
    public static string Describe(PendingApproval approval) => string.Create(
        CultureInfo.InvariantCulture,
        $"The agent wants to call the tool '{approval.Tool}', which needs your approval.\nArguments: {approval.Arguments}\nWhy approval is required: {approval.Reason} (rule {approval.Rule})\nApproval id: {approval.Id}; without an answer by {approval.ExpiresAt.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} the call is denied.");

    /// <summary>The reason shown to the agent when a held call is refused: denied (by whom, with the note) or timed out.</summary>
    public static string RefusalReason(PendingApproval approval, in ApprovalOutcome outcome)
    {
        if (outcome.Status == ApprovalStatus.TimedOut)
        {
            double seconds = Math.Round(approval.Request.Timeout.TotalSeconds);
            return string.Create(CultureInfo.InvariantCulture, $"{approval.Reason}; nobody approved the call within {seconds} s, so the approval timed out and the call was denied");
        }

        string by = outcome.By is null ? string.Empty : " by " + outcome.By;
        string note = outcome.Note is null ? string.Empty : ": " + outcome.Note;
        return outcome.Status == ApprovalStatus.Denied
            ? $"{approval.Reason}; approval denied{by}{note}"
            : $"{approval.Reason}; the approval was withdrawn";
    }

    /// <summary>
    /// Reads an elicitation result (client/elicitation#response): <c>action</c> accept/decline/cancel and,
    /// on accept, <c>content.decision</c>, <c>content.note</c>, <c>content.scope</c>. False when it is not one.
    /// </summary>
    public static bool TryReadElicitationResult(ReadOnlySequence<byte> result, out ElicitationAnswer answer)
    {
        answer = default;
        try
        {
            var reader = new Utf8JsonReader(result);
            using JsonDocument document = JsonDocument.ParseValue(ref reader);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("action"u8, out JsonElement action) || action.ValueKind != JsonValueKind.String)
            {
                return false;
            }

            string? note = null;
            string? decision = null;
            string? scopeText = null;
            if (root.TryGetProperty("content"u8, out JsonElement content) && content.ValueKind == JsonValueKind.Object)
            {
                decision = StringOf(content, "decision"u8);
                note = StringOf(content, "note"u8);
                scopeText = StringOf(content, "scope"u8);
            }

            if (note is { Length: 0 })
            {
                note = null;
            }

            switch (action.GetString())
            {
                case "accept":
                    ApprovalBroker.TryParseScope(scopeText, out ApprovalScope scope);
                    bool approve = decision == "approve";
                    answer = new ElicitationAnswer(approve, note ?? (approve || decision == "deny" ? null : "no decision given in the client"), scope);
                    return true;
                case "decline":
                    answer = new ElicitationAnswer(false, note ?? "declined in the client", ApprovalScope.Call);
                    return true;
                case "cancel":
                    answer = new ElicitationAnswer(false, note ?? "dismissed in the client", ApprovalScope.Call);
                    return true;
                default:
                    return false;
            }
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads what a request says about the client: its capabilities and name. Up to 2025-11-25 they come
    /// once, in <c>initialize</c> (<c>params.capabilities</c>, <c>params.clientInfo</c>); from 2026-07-28 there
    /// is no initialize and every request may carry them in <c>params._meta</c>
    /// (<c>io.modelcontextprotocol/clientCapabilities</c>, <c>io.modelcontextprotocol/clientInfo</c>; the first
    /// request is usually <c>server/discover</c>). Form elicitation is supported when the capability is an
    /// empty object (2025-06-18) or names <c>form</c> (2025-11-25: <c>{ "form": {}, "url": {} }</c>; a
    /// url-only client cannot show our form). <paramref name="elicitationForm"/> is null when the request
    /// says nothing about capabilities; <paramref name="isHandshake"/> is true for initialize and server/discover.
    /// </summary>
    public static void ReadClientCapabilities(in ReadOnlySequence<byte> message, out bool? elicitationForm, out string? clientName, out bool isHandshake)
    {
        elicitationForm = null;
        clientName = null;
        isHandshake = false;
        try
        {
            var reader = new Utf8JsonReader(message);
            using JsonDocument document = JsonDocument.ParseValue(ref reader);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return;
            }

            string? method = StringOf(root, "method"u8);
            isHandshake = method is "initialize" or "server/discover";
            if (!root.TryGetProperty("params"u8, out JsonElement parameters) || parameters.ValueKind != JsonValueKind.Object)
            {
                return;
            }

            if (method == "initialize")
            {
                ReadCapabilities(parameters, "clientInfo"u8, "capabilities"u8, ref elicitationForm, ref clientName);
            }

            if (parameters.TryGetProperty("_meta"u8, out JsonElement meta) && meta.ValueKind == JsonValueKind.Object)
            {
                ReadCapabilities(meta, "io.modelcontextprotocol/clientInfo"u8, "io.modelcontextprotocol/clientCapabilities"u8, ref elicitationForm, ref clientName);
            }
        }
        catch (JsonException)
        {
        }
    }

    private static void ReadCapabilities(JsonElement holder, ReadOnlySpan<byte> infoName, ReadOnlySpan<byte> capabilitiesName, ref bool? elicitationForm, ref string? clientName)
    {
        if (holder.TryGetProperty(infoName, out JsonElement info) && info.ValueKind == JsonValueKind.Object)
        {
            clientName = StringOf(info, "name"u8) ?? clientName;
        }

        if (holder.TryGetProperty(capabilitiesName, out JsonElement capabilities) && capabilities.ValueKind == JsonValueKind.Object)
        {
            elicitationForm = false;
            if (capabilities.TryGetProperty("elicitation"u8, out JsonElement elicitation) && elicitation.ValueKind == JsonValueKind.Object)
            {
                bool hasForm = elicitation.TryGetProperty("form"u8, out _);
                bool hasUrl = elicitation.TryGetProperty("url"u8, out _);
                elicitationForm = hasForm || !hasUrl;
            }
        }
    }

    private static string? StringOf(JsonElement element, ReadOnlySpan<byte> name) =>
        element.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static void WriteNewline(IBufferWriter<byte> output)
    {
        output.GetSpan(1)[0] = (byte)'\n';
        output.Advance(1);
    }
}
