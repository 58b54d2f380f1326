using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace PolicyCompiler.Conformance.Fixture;

/// <summary>
/// What the @modelcontextprotocol/conformance server scenarios call (suite 0.1.16: tool, prompt and
/// resource names, contents and side effects as each scenario's description asks), registered as
/// low-level handlers so every byte on the wire is ours to choose: the 2020-12 schema must survive
/// verbatim, and the elicitation schemas use the SEP-1034/SEP-1330 shapes exactly.
/// </summary>
internal static class ConformanceServer
{
    // A 1×1 PNG (red pixel) and a 2-sample 8 kHz mono WAV: the smallest valid media for image/audio content.
    private static readonly byte[] Png = Convert.FromBase64String(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==");

    private static readonly byte[] Wav = SilentWav();

    private static readonly JsonElement EmptyObjectSchema = Json("""{"type":"object","properties":{}}""");

    private static readonly Tool[] Tools =
    [
        NoArgs("test_simple_text", "Returns one text block"),
        NoArgs("test_image_content", "Returns one image block (PNG)"),
        NoArgs("test_audio_content", "Returns one audio block (WAV)"),
        NoArgs("test_embedded_resource", "Returns one embedded text resource"),
        NoArgs("test_multiple_content_types", "Returns text, image and an embedded resource"),
        NoArgs("test_tool_with_logging", "Sends three info log notifications while it runs"),
        NoArgs("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100 when given a progress token"),
        NoArgs("test_error_handling", "Always fails with isError: true"),
        new Tool
        {
            Name = "test_sampling",
            Description = "Asks the client's LLM (sampling/createMessage) and returns its answer",
            InputSchema = Json("""{"type":"object","properties":{"prompt":{"type":"string","description":"The prompt to send to the LLM"}},"required":["prompt"]}"""),
        },
        new Tool
        {
            Name = "test_elicitation",
            Description = "Asks the user (elicitation/create) for a username and an email",
            InputSchema = Json("""{"type":"object","properties":{"message":{"type":"string","description":"The message to show the user"}},"required":["message"]}"""),
        },
        NoArgs("test_elicitation_sep1034_defaults", "Elicitation whose schema carries a default for every primitive type (SEP-1034)"),
        NoArgs("test_elicitation_sep1330_enums", "Elicitation with the five enum schema shapes (SEP-1330)"),
        NoArgs("test_reconnection", "Ends its SSE stream mid-call; the result arrives after the client reconnects (SEP-1699)"),
        // Not a suite tool: the gateway's regression tests (tests/PolicyCompiler.Http.Tests) use it to make
        // the server speak outside any request, as list_changed does.
        NoArgs("test_list_changed_later", "Returns at once, then sends notifications/tools/list_changed"),
        new Tool
        {
            Name = "json_schema_2020_12_tool",
            Description = "Tool with JSON Schema 2020-12 features",
            InputSchema = Json("""
                {"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
                 "$defs":{"address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}}}},
                 "properties":{"name":{"type":"string"},"address":{"$ref":"#/$defs/address"}},
                 "additionalProperties":false}
                """),
        },
    ];

    private static readonly Prompt[] Prompts =
    [
        new Prompt { Name = "test_simple_prompt", Description = "A prompt without arguments" },
        new Prompt
        {
            Name = "test_prompt_with_arguments",
            Description = "A prompt with two required arguments",
            Arguments =
            [
                new PromptArgument { Name = "arg1", Description = "First test argument", Required = true },
                new PromptArgument { Name = "arg2", Description = "Second test argument", Required = true },
            ],
        },
        new Prompt
        {
            Name = "test_prompt_with_embedded_resource",
            Description = "A prompt that embeds a resource",
            Arguments = [new PromptArgument { Name = "resourceUri", Description = "URI of the resource to embed", Required = true }],
        },
        new Prompt { Name = "test_prompt_with_image", Description = "A prompt with an image" },
    ];

    private static readonly Resource[] Resources =
    [
        new Resource { Uri = "test://static-text", Name = "static-text", Description = "A static text resource", MimeType = "text/plain" },
        new Resource { Uri = "test://static-binary", Name = "static-binary", Description = "A static binary resource (PNG)", MimeType = "image/png" },
        new Resource { Uri = "test://watched-resource", Name = "watched-resource", Description = "A resource clients subscribe to", MimeType = "text/plain" },
    ];

    /// <summary>Subscribed URIs per session (the key is "" over stdio, where there is one session).</summary>
    private static readonly ConcurrentDictionary<string, ConcurrentDictionary<string, bool>> Subscriptions = new();

    public static void ConfigureOptions(McpServerOptions options)
    {
        options.ServerInfo = new Implementation { Name = "policycompiler-conformance-fixture", Version = "1.0.0" };
    }

    public static IMcpServerBuilder Configure(IMcpServerBuilder builder) => builder
        .WithListToolsHandler((_, _) => ValueTask.FromResult(new ListToolsResult { Tools = Tools }))
        .WithCallToolHandler(CallToolAsync)
        .WithListPromptsHandler((_, _) => ValueTask.FromResult(new ListPromptsResult { Prompts = Prompts }))
        .WithGetPromptHandler((request, _) => ValueTask.FromResult(GetPrompt(request.Params!)))
        .WithListResourcesHandler((_, _) => ValueTask.FromResult(new ListResourcesResult { Resources = Resources }))
        .WithListResourceTemplatesHandler((_, _) => ValueTask.FromResult(new ListResourceTemplatesResult
        {
            ResourceTemplates =
            [
                new ResourceTemplate { UriTemplate = "test://template/{id}/data", Name = "template-data", Description = "Data for an id", MimeType = "application/json" },
            ],
        }))
        .WithReadResourceHandler((request, _) => ValueTask.FromResult(ReadResource(request.Params!.Uri)))
        .WithSubscribeToResourcesHandler((request, _) =>
        {
            Subscriptions.GetOrAdd(request.Server.SessionId ?? "", _ => new())[request.Params!.Uri] = true;
            return ValueTask.FromResult(new EmptyResult());
        })
        .WithUnsubscribeFromResourcesHandler((request, _) =>
        {
            if (Subscriptions.TryGetValue(request.Server.SessionId ?? "", out var uris))
            {
                uris.TryRemove(request.Params!.Uri, out bool _);
            }

            return ValueTask.FromResult(new EmptyResult());
        })
        .WithCompleteHandler((request, _) => ValueTask.FromResult(Complete(request.Params!)))
        .WithSetLoggingLevelHandler((_, _) => ValueTask.FromResult(new EmptyResult()));

    private static async ValueTask<CallToolResult> CallToolAsync(RequestContext<CallToolRequestParams> request, CancellationToken cancellationToken)
    {
        CallToolRequestParams call = request.Params!;
        McpServer server = request.Server;
        switch (call.Name)
        {
            case "test_simple_text":
                return Text("This is a simple text response for testing.");
            case "test_image_content":
                return new CallToolResult { Content = [ImageContentBlock.FromBytes(Png, "image/png")] };
            case "test_audio_content":
                return new CallToolResult { Content = [AudioContentBlock.FromBytes(Wav, "audio/wav")] };
            case "test_embedded_resource":
                return new CallToolResult
                {
                    Content = [new EmbeddedResourceBlock { Resource = new TextResourceContents { Uri = "test://embedded-resource", MimeType = "text/plain", Text = "This is an embedded resource content." } }],
                };
            case "test_multiple_content_types":
                return new CallToolResult
                {
                    Content =
                    [
                        new TextContentBlock { Text = "Multiple content types test:" },
                        ImageContentBlock.FromBytes(Png, "image/png"),
                        new EmbeddedResourceBlock { Resource = new TextResourceContents { Uri = "test://mixed-content-resource", MimeType = "application/json", Text = """{"test":"data","value":123}""" } },
                    ],
                };
            case "test_tool_with_logging":
                // Three log notifications 50 ms apart: the client must see them while the call runs.
                await LogAsync(server, "Tool execution started", cancellationToken);
                await Task.Delay(50, cancellationToken);
                await LogAsync(server, "Tool processing data", cancellationToken);
                await Task.Delay(50, cancellationToken);
                await LogAsync(server, "Tool execution completed", cancellationToken);
                return Text("Tool with logging executed successfully");
            case "test_tool_with_progress":
                for (int progress = 0; progress <= 100; progress += 50)
                {
                    if (progress > 0)
                    {
                        await Task.Delay(50, cancellationToken);
                    }

                    if (call.ProgressToken is { } token)
                    {
                        await server.NotifyProgressAsync(token, new ProgressNotificationValue { Progress = progress, Total = 100 }, cancellationToken: cancellationToken);
                    }
                }

                return Text("Tool with progress executed successfully");
            case "test_error_handling":
                return new CallToolResult { IsError = true, Content = [new TextContentBlock { Text = "This tool intentionally returns an error for testing" }] };
            case "test_sampling":
                return await SampleAsync(server, Argument(call, "prompt"), cancellationToken);
            case "test_elicitation":
                return await ElicitAsync(server, "User response", new JsonObject
                {
                    ["message"] = Argument(call, "message"),
                    ["requestedSchema"] = JsonNode.Parse("""
                        {"type":"object","properties":{
                           "username":{"type":"string","description":"User's response"},
                           "email":{"type":"string","description":"User's email address"}},
                         "required":["username","email"]}
                        """),
                }, cancellationToken);
            case "test_elicitation_sep1034_defaults":
                return await ElicitAsync(server, "Elicitation completed", new JsonObject
                {
                    ["message"] = "Please review the defaults",
                    ["requestedSchema"] = JsonNode.Parse("""
                        {"type":"object","properties":{
                           "name":{"type":"string","description":"Name","default":"John Doe"},
                           "age":{"type":"integer","description":"Age","default":30},
                           "score":{"type":"number","description":"Score","default":95.5},
                           "status":{"type":"string","description":"Status","enum":["active","inactive","pending"],"default":"active"},
                           "verified":{"type":"boolean","description":"Verified","default":true}}}
                        """),
                }, cancellationToken);
            case "test_elicitation_sep1330_enums":
                return await ElicitAsync(server, "Elicitation completed", new JsonObject
                {
                    ["message"] = "Please choose",
                    ["requestedSchema"] = JsonNode.Parse("""
                        {"type":"object","properties":{
                           "untitledSingle":{"type":"string","enum":["option1","option2","option3"]},
                           "titledSingle":{"type":"string","oneOf":[{"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},{"const":"value3","title":"Third Option"}]},
                           "legacyEnum":{"type":"string","enum":["opt1","opt2","opt3"],"enumNames":["Option One","Option Two","Option Three"]},
                           "untitledMulti":{"type":"array","items":{"type":"string","enum":["option1","option2","option3"]}},
                           "titledMulti":{"type":"array","items":{"anyOf":[{"const":"value1","title":"First Choice"},{"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}}}
                        """),
                }, cancellationToken);
            case "test_reconnection":
                // SEP-1699: end the POST's SSE stream now (the client gets a retry interval and the last
                // event id), finish later; the result waits in the event store for GET + Last-Event-ID.
                // Over stdio (no HTTP stream to end) the result simply comes back on the call.
                try
                {
                    await request.EnablePollingAsync(TimeSpan.FromMilliseconds(500), cancellationToken);
                    await Task.Delay(100, cancellationToken);
                }
                catch (InvalidOperationException)
                {
                }

                return Text("Reconnection test completed");
            case "json_schema_2020_12_tool":
                return Text("ok");
            case "test_list_changed_later":
                _ = NotifyListChangedAsync(server);
                return Text("list_changed follows");
            default:
                return new CallToolResult { IsError = true, Content = [new TextContentBlock { Text = $"Unknown tool: {call.Name}" }] };
        }
    }

    private static async ValueTask<CallToolResult> SampleAsync(McpServer server, string prompt, CancellationToken cancellationToken)
    {
        if (server.ClientCapabilities?.Sampling is null)
        {
            return new CallToolResult { IsError = true, Content = [new TextContentBlock { Text = "The client does not support sampling" }] };
        }

        CreateMessageResult result = await server.SampleAsync(new CreateMessageRequestParams
        {
            Messages = [new SamplingMessage { Role = Role.User, Content = [new TextContentBlock { Text = prompt }] }],
            MaxTokens = 100,
        }, cancellationToken);
        string text = "";
        foreach (ContentBlock block in result.Content)
        {
            if (block is TextContentBlock t)
            {
                text += t.Text;
            }
        }

        return Text($"LLM response: {text}");
    }

    /// <summary>Sends elicitation/create with exactly <paramref name="parameters"/> and reports the answer.</summary>
    private static async ValueTask<CallToolResult> ElicitAsync(McpServer server, string label, JsonObject parameters, CancellationToken cancellationToken)
    {
        if (server.ClientCapabilities?.Elicitation is null)
        {
            return new CallToolResult { IsError = true, Content = [new TextContentBlock { Text = "The client does not support elicitation" }] };
        }

        JsonRpcResponse response = await server.SendRequestAsync(
            new JsonRpcRequest { Method = RequestMethods.ElicitationCreate, Params = parameters }, cancellationToken);
        JsonNode? result = response.Result;
        string action = result?["action"]?.GetValue<string>() ?? "";
        string content = result?["content"]?.ToJsonString() ?? "{}";
        return Text(label == "User response"
            ? $"User response: action={action}, content={content}"
            : $"{label}: action={action}, content={content}");
    }

    private static async Task NotifyListChangedAsync(McpServer server)
    {
        // After the response: the notification belongs to no request (basic/transports: the GET stream's kind).
        await Task.Delay(50);
        await server.SendNotificationAsync(NotificationMethods.ToolListChangedNotification);
    }

    private static ValueTask LogAsync(McpServer server, string message, CancellationToken cancellationToken) =>
        new(server.SendNotificationAsync(NotificationMethods.LoggingMessageNotification, new LoggingMessageNotificationParams
        {
            Level = LoggingLevel.Info,
            Logger = "conformance-fixture",
            Data = JsonSerializer.SerializeToElement(message, FixtureJson.Default.String),
        }, cancellationToken: cancellationToken));

    private static GetPromptResult GetPrompt(GetPromptRequestParams request)
    {
        string Arg(string name) => request.Arguments is { } a && a.TryGetValue(name, out JsonElement v) ? v.GetString() ?? "" : "";
        return request.Name switch
        {
            "test_simple_prompt" => Messages(new TextContentBlock { Text = "This is a simple prompt for testing." }),
            "test_prompt_with_arguments" => Messages(new TextContentBlock { Text = $"Prompt with arguments: arg1='{Arg("arg1")}', arg2='{Arg("arg2")}'" }),
            "test_prompt_with_embedded_resource" => Messages(
                new EmbeddedResourceBlock { Resource = new TextResourceContents { Uri = Arg("resourceUri"), MimeType = "text/plain", Text = "Embedded resource content for testing." } },
                new TextContentBlock { Text = "Please process the embedded resource above." }),
            "test_prompt_with_image" => Messages(
                ImageContentBlock.FromBytes(Png, "image/png"),
                new TextContentBlock { Text = "Please analyze the image above." }),
            _ => throw new McpProtocolException($"Unknown prompt: {request.Name}", McpErrorCode.InvalidParams),
        };
    }

    private static ReadResourceResult ReadResource(string uri)
    {
        if (uri == "test://static-text")
        {
            return Contents(new TextResourceContents { Uri = uri, MimeType = "text/plain", Text = "This is the content of the static text resource." });
        }

        if (uri == "test://static-binary")
        {
            return Contents(BlobResourceContents.FromBytes(Png, uri, "image/png"));
        }

        if (uri == "test://watched-resource")
        {
            return Contents(new TextResourceContents { Uri = uri, MimeType = "text/plain", Text = "Watched resource content." });
        }

        const string prefix = "test://template/", suffix = "/data";
        if (uri.StartsWith(prefix, StringComparison.Ordinal) && uri.EndsWith(suffix, StringComparison.Ordinal) && uri.Length > prefix.Length + suffix.Length)
        {
            string id = uri[prefix.Length..^suffix.Length];
            var data = new JsonObject { ["id"] = id, ["templateTest"] = true, ["data"] = $"Data for ID: {id}" };
            return Contents(new TextResourceContents { Uri = uri, MimeType = "application/json", Text = data.ToJsonString() });
        }

        throw new McpProtocolException($"Resource not found: {uri}", McpErrorCode.ResourceNotFound);
    }

    private static CompleteResult Complete(CompleteRequestParams request)
    {
        // Suggestions for test_prompt_with_arguments' arguments that start with what was typed.
        string typed = request.Argument.Value ?? "";
        var values = new List<string>();
        foreach (string candidate in (string[])["paris", "park", "party", "test", "testing"])
        {
            if (candidate.StartsWith(typed, StringComparison.OrdinalIgnoreCase))
            {
                values.Add(candidate);
            }
        }

        return new CompleteResult { Completion = new Completion { Values = values, Total = values.Count, HasMore = false } };
    }

    private static Tool NoArgs(string name, string description) =>
        new() { Name = name, Description = description, InputSchema = EmptyObjectSchema };

    private static CallToolResult Text(string text) => new() { Content = [new TextContentBlock { Text = text }] };

    private static GetPromptResult Messages(params ContentBlock[] blocks)
    {
        var messages = new List<PromptMessage>();
        foreach (ContentBlock block in blocks)
        {
            messages.Add(new PromptMessage { Role = Role.User, Content = block });
        }

        return new GetPromptResult { Messages = messages };
    }

    private static ReadResourceResult Contents(ResourceContents contents) => new() { Contents = [contents] };

    private static string Argument(CallToolRequestParams call, string name) =>
        call.Arguments is { } a && a.TryGetValue(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    private static JsonElement Json(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    private static byte[] SilentWav()
    {
        // RIFF/WAVE, PCM 16-bit mono 8000 Hz, two samples of silence.
        const int dataBytes = 4;
        byte[] wav = new byte[44 + dataBytes];
        Encoding.ASCII.GetBytes("RIFF").CopyTo(wav, 0);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(4), 36 + dataBytes);
        Encoding.ASCII.GetBytes("WAVEfmt ").CopyTo(wav, 8);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(16), 16);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(20), 1);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(22), 1);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(24), 8000);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(28), 16000);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(32), 2);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(34), 16);
        Encoding.ASCII.GetBytes("data").CopyTo(wav, 36);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(40), dataBytes);
        return wav;
    }
}
