// Usage: DemoClient SCENARIO.json GATEWAY [GATEWAY-ARGS...]
// Starts GATEWAY (with its arguments, e.g. `stdio --grant demo -- dotnet EksLikeServer.dll`) as an
// MCP server, lists its tools, then plays the scenario: a JSON array of
// { "tool": NAME, "arguments": {...}, "repeat": N?, "note": "...", "human": "approve" | "deny"? } and
// prints each decision. The client declares elicitation, so the gateway asks it when a call needs
// approval (docs/approvals.md); "human" is the answer a person would give in that form.
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: DemoClient SCENARIO.json GATEWAY [GATEWAY-ARGS...]");
    return 2;
}

var scenario = JsonNode.Parse(File.ReadAllText(args[0]))!.AsArray();
string? human = null; // the scripted person's answer for the current step
await using var client = await McpClient.CreateAsync(
    new StdioClientTransport(new StdioClientTransportOptions
    {
        Name = "gateway",
        Command = args[1],
        Arguments = args[2..],
    }),
    new McpClientOptions
    {
        Capabilities = new ClientCapabilities { Elicitation = new ElicitationCapability() },
        Handlers = new McpClientHandlers { ElicitationHandler = (request, _) => ValueTask.FromResult(Answer(request!, human)) },
    });

var tools = await client.ListToolsAsync();
Console.WriteLine($"tools/list through the gateway: {tools.Count} tools visible");
Console.WriteLine("  " + string.Join(", ", tools.Select(t => t.Name).Order(StringComparer.Ordinal)));
Console.WriteLine();

int allowed = 0, blocked = 0;
foreach (var step in scenario)
{
    var tool = (string)step!["tool"]!;
    var arguments = step["arguments"]?.Deserialize<Dictionary<string, object?>>() ?? [];
    int repeat = (int?)step["repeat"] ?? 1;
    human = (string?)step["human"];
    if (step["note"] is { } note) Console.WriteLine($"# {note}");
    // Consecutive calls with the same outcome are printed once, with their range (#1-#30).
    int first = 1;
    string? previous = null;
    for (int i = 1; i <= repeat + 1; i++)
    {
        string? line = null;
        if (i <= repeat)
        {
            var result = await client.CallToolAsync(tool, arguments);
            var decision = result.Meta?["policycompiler/decision"];
            if (decision is null) allowed++; else blocked++;
            string verdict = decision is null ? "forwarded" : (string?)decision["decision"] ?? "?";
            string text = string.Concat(result.Content.OfType<TextContentBlock>().Select(t => t.Text));
            line = $"{verdict}: {Shorten(text)}";
        }
        if (previous is not null && line != previous)
        {
            string range = repeat == 1 ? "" : first == i - 1 ? $" #{first}" : $" #{first}-#{i - 1}";
            Console.WriteLine($"  {tool}{range} {JsonSerializer.Serialize(arguments)}\n    → {previous}");
            first = i;
        }
        previous = line;
    }
    Console.WriteLine();
}

Console.WriteLine($"{allowed} calls reached the server, {blocked} were stopped by the gateway.");
return 0;

// What the person in front of the client answers when the gateway asks for approval.
static ElicitResult Answer(ElicitRequestParams request, string? decision)
{
    string question = request.Message.Split('\n')[0];
    Console.WriteLine($"    ? gateway asks the human: {question}");
    if (decision is null)
    {
        Console.WriteLine("    ! (the human closes the form)");
        return new ElicitResult { Action = "cancel" };
    }

    Console.WriteLine($"    ! the human answers: {decision}");
    return new ElicitResult
    {
        Action = "accept",
        Content = new Dictionary<string, JsonElement>
        {
            ["decision"] = JsonSerializer.SerializeToElement(decision),
            ["note"] = JsonSerializer.SerializeToElement(decision == "approve" ? "checked with the on-call engineer" : "not during the freeze"),
        },
    };
}

static string Shorten(string text) => text.Length <= 160 ? text : text[..157] + "...";
