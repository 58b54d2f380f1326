using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using ModelContextProtocol.Client;

namespace PolicyCompiler.Http.Tests.Infrastructure;

/// <summary>Clients: the official SDK's Streamable HTTP client, and raw HTTP for what SDKs never send.</summary>
internal static class Clients
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    /// <summary>Connects the SDK's Streamable HTTP client; with <paramref name="http"/>, over that client (the caller disposes it, and so decides when its connections close).</summary>
    public static Task<McpClient> ConnectAsync(Uri url, string? token = null, bool standaloneGet = true, HttpClient? http = null)
    {
        var options = new HttpClientTransportOptions
        {
            Endpoint = url,
            TransportMode = HttpTransportMode.StreamableHttp,
            EnableStandaloneGetStream = standaloneGet,
            AdditionalHeaders = token is null ? null : new Dictionary<string, string> { ["Authorization"] = "Bearer " + token },
            MaxReconnectionAttempts = 0,
        };
        HttpClientTransport transport = http is null ? new HttpClientTransport(options) : new HttpClientTransport(options, http, ownsHttpClient: false);
        using var timeout = new CancellationTokenSource(Timeout);
        return McpClient.CreateAsync(transport, cancellationToken: timeout.Token);
    }

    public static HttpClient Raw() => new() { Timeout = Timeout };

    public static HttpRequestMessage Post(Uri url, string body, string? token = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    public const string Initialize =
        """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}""";

    /// <summary>The one JSON-RPC message of a JSON body or of an SSE response's data lines (the last one with an id).</summary>
    public static async Task<JsonNode> ReadMessageAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        if (response.Content.Headers.ContentType?.MediaType == "text/event-stream")
        {
            JsonNode? last = null;
            foreach (string line in text.Split('\n'))
            {
                if (line.StartsWith("data:", StringComparison.Ordinal))
                {
                    JsonNode node = JsonNode.Parse(line[5..].Trim())!;
                    if (node["id"] is not null)
                    {
                        last = node;
                    }
                }
            }

            return last ?? throw new InvalidOperationException("no message in: " + text);
        }

        return JsonNode.Parse(text)!;
    }
}
