using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using PolicyCompiler.Gateway.Enforcement.Approvals;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc approvals list|approve ID|deny ID --admin URL</c>: answers held tool calls through a running
/// gateway's admin API (docs/approvals.md, "Admin API"), for agents whose client cannot show the
/// elicitation form. The token comes from <c>--token-file</c> or <see cref="AdminToken.EnvironmentVariable"/>.
/// Exit codes: 0 done; 1 the gateway refused (unknown id 404, already answered 409, bad token...) or is unreachable; 2 usage.
/// </summary>
public static class ApprovalsCommand
{
    /// <summary>Creates the <c>approvals</c> command.</summary>
    public static Command Create()
    {
        var admin = new Option<string>("--admin")
        {
            Description = "The gateway's admin listener: ADDRESS:PORT or http://ADDRESS:PORT (its --admin option).",
            Required = true,
        };
        var tokenFile = new Option<string?>("--token-file")
        {
            Description = $"A file holding the admin token (default: ${AdminToken.EnvironmentVariable}).",
        };

        var json = new Option<bool>("--json") { Description = "Print the gateway's JSON as it is." };
        var list = new Command("list", "List the tool calls waiting for approval.");
        list.Options.Add(admin);
        list.Options.Add(tokenFile);
        list.Options.Add(json);
        list.SetAction((parse, cancellationToken) => ListAsync(parse, parse.GetRequiredValue(admin), parse.GetValue(tokenFile), parse.GetValue(json), cancellationToken));

        var command = new Command("approvals", "List and answer tool calls held for a human's approval (docs/approvals.md).");
        command.Subcommands.Add(list);
        command.Subcommands.Add(CreateAnswer("approve", "Approve a held call: the gateway forwards it exactly as it arrived.", admin, tokenFile));
        command.Subcommands.Add(CreateAnswer("deny", "Deny a held call: the agent gets an error result with your note.", admin, tokenFile));
        return command;
    }

    private static Command CreateAnswer(string verb, string description, Option<string> admin, Option<string?> tokenFile)
    {
        var id = new Argument<string>("ID") { Description = "The approval id (apr_..., from `policyc approvals list`)." };
        var note = new Option<string?>("--note") { Description = "A note for the audit log (and, on a denial, for the agent)." };
        var by = new Option<string?>("--by") { Description = "Who answers (default: your user name)." };
        var command = new Command(verb, description);
        command.Arguments.Add(id);
        command.Options.Add(admin);
        command.Options.Add(tokenFile);
        command.Options.Add(note);
        command.Options.Add(by);
        Option<string>? scope = null;
        if (verb == "approve")
        {
            scope = new Option<string>("--scope")
            {
                Description = "call: this call only (default); session: also later calls in the same session to the same tool with the same arguments.",
                DefaultValueFactory = _ => "call",
            };
            scope.AcceptOnlyFromAmong("call", "session");
            command.Options.Add(scope);
        }

        command.SetAction((parse, cancellationToken) => AnswerAsync(
            parse,
            parse.GetRequiredValue(admin),
            parse.GetValue(tokenFile),
            parse.GetRequiredValue(id),
            verb,
            parse.GetValue(note),
            parse.GetValue(by) ?? Environment.UserName,
            scope is null ? null : parse.GetValue(scope),
            cancellationToken));
        return command;
    }

    private static async Task<int> ListAsync(ParseResult parse, string admin, string? tokenFile, bool raw, CancellationToken cancellationToken)
    {
        TextWriter output = parse.InvocationConfiguration.Output;
        using var request = new HttpRequestMessage(HttpMethod.Get, "approvals");
        (_, string body, int exit) = await SendAsync(parse, admin, tokenFile, request, cancellationToken).ConfigureAwait(false);
        if (exit != 0)
        {
            return exit;
        }

        if (raw)
        {
            await output.WriteAsync(body).ConfigureAwait(false);
            return 0;
        }

        using JsonDocument document = JsonDocument.Parse(body);
        JsonElement approvals = document.RootElement.GetProperty("approvals");
        if (approvals.GetArrayLength() == 0)
        {
            await output.WriteLineAsync("No tool call is waiting for approval.").ConfigureAwait(false);
            return 0;
        }

        foreach (JsonElement approval in approvals.EnumerateArray())
        {
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{Text(approval, "id")}  {Text(approval, "tool")}  grant {Text(approval, "grant")}  session {Text(approval, "session")}  expires {Text(approval, "expires")}")).ConfigureAwait(false);
            await output.WriteLineAsync("  arguments: " + Text(approval, "arguments")).ConfigureAwait(false);
            await output.WriteLineAsync($"  reason:    {Text(approval, "reason")} ({Text(approval, "rule")})").ConfigureAwait(false);
        }

        return 0;
    }

    private static async Task<int> AnswerAsync(ParseResult parse, string admin, string? tokenFile, string id, string verb, string? note, string by, string? scope, CancellationToken cancellationToken)
    {
        var body = new MemoryStream();
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("by"u8, by);
            if (note is not null)
            {
                json.WriteString("note"u8, note);
            }

            if (scope is not null)
            {
                json.WriteString("scope"u8, scope);
            }

            json.WriteEndObject();
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "approvals/" + Uri.EscapeDataString(id) + "/" + verb)
        {
            Content = new ByteArrayContent(body.ToArray()) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        (_, _, int exit) = await SendAsync(parse, admin, tokenFile, request, cancellationToken).ConfigureAwait(false);
        if (exit == 0)
        {
            await parse.InvocationConfiguration.Output.WriteLineAsync($"{id}: {(verb == "approve" ? "approved" + (scope == "session" ? " for the rest of the session" : string.Empty) : "denied")}").ConfigureAwait(false);
        }

        return exit;
    }

    /// <summary>Sends <paramref name="request"/> (a path relative to the admin URL) with the token; prints the gateway's error when it refuses.</summary>
    private static async Task<(int Status, string Body, int Exit)> SendAsync(ParseResult parse, string admin, string? tokenFile, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        TextWriter error = parse.InvocationConfiguration.Error;
        if (!TryBaseUri(admin, out Uri? baseUri))
        {
            await error.WriteLineAsync($"policyc approvals: --admin '{admin}' is not ADDRESS:PORT or an http(s) URL").ConfigureAwait(false);
            return (0, string.Empty, 2);
        }

        string? token;
        try
        {
            token = tokenFile is not null ? File.ReadAllText(tokenFile).Trim() : Environment.GetEnvironmentVariable(AdminToken.EnvironmentVariable)?.Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"policyc approvals: --token-file {tokenFile}: {e.Message}").ConfigureAwait(false);
            return (0, string.Empty, 2);
        }

        if (string.IsNullOrEmpty(token))
        {
            await error.WriteLineAsync($"policyc approvals: no admin token: give --token-file FILE or set ${AdminToken.EnvironmentVariable}").ConfigureAwait(false);
            return (0, string.Empty, 2);
        }

        request.RequestUri = new Uri(baseUri, request.RequestUri!.OriginalString);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            using HttpResponseMessage response = await http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return (200, body, 0);
            }

            await error.WriteLineAsync($"policyc approvals: the gateway answered {(int)response.StatusCode} {response.ReasonPhrase}: {ErrorOf(body)}").ConfigureAwait(false);
            return ((int)response.StatusCode, body, 1);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            await error.WriteLineAsync($"policyc approvals: cannot reach {baseUri}: {e.Message}").ConfigureAwait(false);
            return (0, string.Empty, 1);
        }
    }

    private static bool TryBaseUri(string admin, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Uri? baseUri)
    {
        string text = admin.Contains("://", StringComparison.Ordinal) ? admin : "http://" + admin;
        if (!text.EndsWith('/'))
        {
            text += "/";
        }

        return Uri.TryCreate(text, UriKind.Absolute, out baseUri) && (baseUri.Scheme == Uri.UriSchemeHttp || baseUri.Scheme == Uri.UriSchemeHttps);
    }

    private static string ErrorOf(string body)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("error", out JsonElement error) ? error.GetString() ?? body : body;
        }
        catch (JsonException)
        {
            return body.Length > 200 ? body[..200] : body;
        }
    }

    private static string Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out JsonElement value) ? value.ValueKind == JsonValueKind.String ? value.GetString() ?? string.Empty : value.GetRawText() : string.Empty;
}
