using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace PolicyCompiler.Gateway.Enforcement.Approvals;

/// <summary>
/// The approvals routes of the admin listener (docs/approvals.md, "Admin API"):
/// <c>GET /approvals</c> lists the held calls; <c>POST /approvals/{id}/approve</c> and <c>/deny</c> answer
/// one, with an optional JSON body <c>{ "note": "...", "by": "...", "scope": "call"|"session" }</c>.
/// Every request needs <c>Authorization: Bearer TOKEN</c> (<see cref="AdminToken"/>); without a configured
/// token the routes answer 403 and say how to configure one. Unknown id → 404; already answered → 409.
/// </summary>
internal sealed class ApprovalAdminEndpoints(ApprovalBroker broker, AdminToken? token)
{
    private const int MaxBodyBytes = 16 * 1024;
    private const int MaxNoteLength = 1000;
    private const int MaxByLength = 200;

    private static readonly JsonWriterOptions WriterOptions = new() { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Whether <paramref name="path"/> is one of these routes.</summary>
    public static bool Matches(PathString path) => path.StartsWithSegments("/approvals", StringComparison.Ordinal);

    public async Task HandleAsync(HttpContext context)
    {
        HttpRequest request = context.Request;
        if (token is null)
        {
            await WriteMessageAsync(context, StatusCodes.Status403Forbidden, "the approvals admin API is disabled: start the gateway with --admin-token-file FILE (or set " + AdminToken.EnvironmentVariable + ") and send 'Authorization: Bearer TOKEN'").ConfigureAwait(false);
            return;
        }

        if (!token.Matches(request.Headers.Authorization.Count > 0 ? request.Headers.Authorization.ToString() : null))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"policycompiler-admin\"";
            await WriteMessageAsync(context, StatusCodes.Status401Unauthorized, "a valid admin token is required: 'Authorization: Bearer TOKEN'").ConfigureAwait(false);
            return;
        }

        string path = request.Path.Value ?? string.Empty;
        if (path is "/approvals" or "/approvals/")
        {
            if (!HttpMethods.IsGet(request.Method))
            {
                context.Response.Headers.Allow = "GET";
                await WriteMessageAsync(context, StatusCodes.Status405MethodNotAllowed, "use GET /approvals").ConfigureAwait(false);
                return;
            }

            await WriteListAsync(context).ConfigureAwait(false);
            return;
        }

        // /approvals/{id}/approve | /approvals/{id}/deny
        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 3 || parts[2] is not ("approve" or "deny"))
        {
            await WriteMessageAsync(context, StatusCodes.Status404NotFound, "no such route: use GET /approvals, POST /approvals/{id}/approve or POST /approvals/{id}/deny").ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsPost(request.Method))
        {
            context.Response.Headers.Allow = "POST";
            await WriteMessageAsync(context, StatusCodes.Status405MethodNotAllowed, "use POST to answer an approval").ConfigureAwait(false);
            return;
        }

        (string? note, string? by, string? scopeText, string? bodyError) = await ReadBodyAsync(context).ConfigureAwait(false);
        if (bodyError is not null || !ApprovalBroker.TryParseScope(scopeText, out ApprovalScope scope))
        {
            await WriteMessageAsync(context, StatusCodes.Status400BadRequest, bodyError ?? "'scope' must be \"call\" or \"session\"").ConfigureAwait(false);
            return;
        }

        string id = parts[1];
        bool approve = parts[2] == "approve";
        AnswerResult result = broker.Answer(id, approve, string.IsNullOrEmpty(by) ? "admin" : by, string.IsNullOrEmpty(note) ? null : note, scope, ApprovalChannel.Admin);
        switch (result)
        {
            case AnswerResult.Answered:
                context.Response.StatusCode = StatusCodes.Status200OK;
                context.Response.ContentType = "application/json";
                var output = new ArrayBufferWriter<byte>(256);
                using (var json = new Utf8JsonWriter(output, WriterOptions))
                {
                    json.WriteStartObject();
                    json.WriteString("id"u8, id);
                    json.WriteString("status"u8, approve ? "approved"u8 : "denied"u8);
                    if (approve)
                    {
                        json.WriteString("scope"u8, ApprovalBroker.ScopeName(scope));
                    }

                    json.WriteEndObject();
                }

                output.Write("\n"u8);
                await context.Response.Body.WriteAsync(output.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
                return;
            case AnswerResult.AlreadyAnswered:
                await WriteMessageAsync(context, StatusCodes.Status409Conflict, $"approval {id} was already answered, timed out or withdrawn").ConfigureAwait(false);
                return;
            default:
                await WriteMessageAsync(context, StatusCodes.Status404NotFound, $"no pending approval {id}").ConfigureAwait(false);
                return;
        }
    }

    private async Task WriteListAsync(HttpContext context)
    {
        var output = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(output, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteStartArray("approvals"u8);
            foreach (PendingApproval approval in broker.List())
            {
                json.WriteStartObject();
                json.WriteString("id"u8, approval.Id);
                json.WriteString("tool"u8, approval.Tool);
                json.WriteString("arguments"u8, approval.Arguments);
                json.WriteBoolean("argumentsTruncated"u8, approval.Request.ArgumentsTruncated);
                json.WriteString("argumentsSha256"u8, approval.ArgumentsSha256);
                json.WriteString("grant"u8, approval.Grant);
                json.WriteString("session"u8, approval.Session);
                json.WriteString("rule"u8, approval.Rule);
                json.WriteString("reason"u8, approval.Reason);
                json.WriteString("created"u8, approval.CreatedAt.UtcDateTime);
                json.WriteString("expires"u8, approval.ExpiresAt.UtcDateTime);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        output.Write("\n"u8);
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.Body.WriteAsync(output.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Reads the optional answer body; an empty body is an answer with no note.</summary>
    private static async Task<(string? Note, string? By, string? Scope, string? Error)> ReadBodyAsync(HttpContext context)
    {
        if (context.Request.ContentLength > MaxBodyBytes)
        {
            return (null, null, null, "the body is too large");
        }

        var body = new MemoryStream();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            int read;
            while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false)) > 0)
            {
                body.Write(buffer, 0, read);
                if (body.Length > MaxBodyBytes)
                {
                    return (null, null, null, "the body is too large");
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (body.Length == 0)
        {
            return (null, null, null, null);
        }

        try
        {
            using JsonDocument document = JsonDocument.Parse(body.ToArray());
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, null, null, "the body must be a JSON object: { \"note\": \"...\", \"by\": \"...\", \"scope\": \"call\" | \"session\" }");
            }

            string? note = null, by = null, scope = null;
            foreach (JsonProperty property in root.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.String)
                {
                    return (null, null, null, $"'{property.Name}' must be a string");
                }

                switch (property.Name)
                {
                    case "note": note = property.Value.GetString(); break;
                    case "by": by = property.Value.GetString(); break;
                    case "scope": scope = property.Value.GetString(); break;
                    default: return (null, null, null, $"unknown field '{property.Name}': expected note, by, scope");
                }
            }

            if (note is { Length: > MaxNoteLength } || by is { Length: > MaxByLength })
            {
                return (null, null, null, $"'note' may have at most {MaxNoteLength} characters and 'by' at most {MaxByLength}");
            }

            return (note, by, scope, null);
        }
        catch (JsonException e)
        {
            return (null, null, null, "the body is not valid JSON: " + e.Message);
        }
    }

    private static async Task WriteMessageAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var output = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(output, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("error"u8, message);
            json.WriteEndObject();
        }

        output.Write("\n"u8);
        await context.Response.Body.WriteAsync(output.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }
}
