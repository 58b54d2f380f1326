// The client the conformance suite tests (`conformance client --command "ConformanceClient ..."`): the
// suite starts a scenario server, appends its URL to the command and names the scenario in
// MCP_CONFORMANCE_SCENARIO. The client reaches that URL one of three ways:
//   ConformanceClient URL                                  directly (the SDK's Streamable HTTP client)
//   ConformanceClient --gateway GATEWAY --via stdio URL     through `GATEWAY stdio --upstream URL` (a local
//                                                           client starting the gateway as its server)
//   ConformanceClient --gateway GATEWAY --via http URL      through `GATEWAY http --listen … --upstream URL`
// so a scenario that passes directly and fails through the gateway is a gateway bug.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

string url = args.Length > 0 ? args[^1] : throw new ArgumentException("usage: ConformanceClient [--gateway PATH --via stdio|http] URL");
string scenario = Environment.GetEnvironmentVariable("MCP_CONFORMANCE_SCENARIO") ?? "initialize";
string? gateway = Option("--gateway");
string via = Option("--via") ?? "stdio";

var options = new McpClientOptions
{
    ClientInfo = new Implementation { Name = "policycompiler-conformance-client", Version = "1.0.0" },
    // Pinned: unpinned, SDK 2.4.0 opens with 2026-07-28's server/discover, which the suite's scenario
    // servers (2025-06-18/2025-11-25, initialize and sessions) do not know. A pinned client demands the
    // same version back, and sse-retry's server answers initialize with 2025-03-26.
    ProtocolVersion = scenario == "sse-retry" ? "2025-03-26" : "2025-11-25",
    Handlers = new McpClientHandlers { ElicitationHandler = AcceptWithDefaults },
};

Process? httpGateway = null;
IClientTransport transport;
if (gateway is null)
{
    transport = Http(url);
}
else if (via == "stdio")
{
    transport = new StdioClientTransport(new StdioClientTransportOptions
    {
        Name = "gateway",
        Command = gateway,
        Arguments = ["stdio", "--upstream", url],
        StandardErrorLines = line => Console.Error.WriteLine($"[gateway] {line}"),
    });
}
else
{
    int port = FreePort();
    httpGateway = Process.Start(new ProcessStartInfo(gateway)
    {
        ArgumentList = { "http", "--listen", $"127.0.0.1:{port}", "--upstream", url },
        RedirectStandardOutput = false,
    })!;
    await WaitForPortAsync(port);
    transport = Http($"http://127.0.0.1:{port}/mcp");
}

try
{
    await using McpClient client = await McpClient.CreateAsync(transport, options);
    switch (scenario)
    {
        case "initialize":
            break;
        case "tools_call":
            await client.ListToolsAsync();
            Print(await client.CallToolAsync("add_numbers", new Dictionary<string, object?> { ["a"] = 5, ["b"] = 3 }));
            break;
        case "elicitation-sep1034-client-defaults":
            await client.ListToolsAsync();
            Print(await client.CallToolAsync("test_client_elicitation_defaults", new Dictionary<string, object?>()));
            break;
        case "sse-retry":
            await client.ListToolsAsync();
            Print(await client.CallToolAsync("test_reconnection", new Dictionary<string, object?>()));
            break;
        default:
            // Any other scenario: the handshake and a listing.
            await client.ListToolsAsync();
            break;
    }

    return 0;
}
finally
{
    if (httpGateway is not null)
    {
        httpGateway.Kill();
        await httpGateway.WaitForExitAsync();
    }
}

string? Option(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length - 1 ? args[i + 1] : null;
}

static IClientTransport Http(string endpoint) => new HttpClientTransport(new HttpClientTransportOptions
{
    Endpoint = new Uri(endpoint),
    TransportMode = HttpTransportMode.StreamableHttp,
});

static void Print(CallToolResult result)
{
    foreach (ContentBlock block in result.Content)
    {
        Console.WriteLine(block is TextContentBlock text ? text.Text : block.Type);
    }
}

// SEP-1034: a client that accepts an elicitation fills every field the user left alone with the
// schema's default. This client's "user" leaves all of them alone.
static ValueTask<ElicitResult> AcceptWithDefaults(ElicitRequestParams? request, CancellationToken cancellationToken)
{
    var content = new Dictionary<string, JsonElement>();
    if (request?.RequestedSchema is { } schema)
    {
        JsonElement json = JsonSerializer.SerializeToElement(schema, ModelContextProtocol.McpJsonUtilities.DefaultOptions);
        if (json.TryGetProperty("properties", out JsonElement properties))
        {
            foreach (JsonProperty property in properties.EnumerateObject())
            {
                if (property.Value.TryGetProperty("default", out JsonElement value))
                {
                    content[property.Name] = value.Clone();
                }
            }
        }
    }

    return ValueTask.FromResult(new ElicitResult { Action = "accept", Content = content });
}

static int FreePort()
{
    using var listener = new TcpListener(IPAddress.Loopback, 0);
    listener.Start();
    return ((IPEndPoint)listener.LocalEndpoint).Port;
}

static async Task WaitForPortAsync(int port)
{
    for (int attempt = 0; attempt < 100; attempt++)
    {
        try
        {
            using var probe = new TcpClient();
            await probe.ConnectAsync(IPAddress.Loopback, port);
            return;
        }
        catch (SocketException)
        {
            await Task.Delay(50);
        }
    }

    throw new TimeoutException($"the gateway did not listen on 127.0.0.1:{port}");
}
