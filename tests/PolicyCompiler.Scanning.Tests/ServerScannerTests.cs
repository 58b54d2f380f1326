using System.Text.Json;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using PolicyCompiler.Scanning.Discovery;

namespace PolicyCompiler.Scanning.Tests;

/// <summary>The scanner against MCP servers of the official SDK running in this process (edge cases no real server shows).</summary>
public sealed class ServerScannerTests
{
    private static readonly ScanTarget Target = new StdioScanTarget("in-memory", []);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    private static Tool NewTool(string name, string? description = null, ToolAnnotations? annotations = null) => new()
    {
        Name = name,
        Description = description,
        InputSchema = JsonSerializer.SerializeToElement(new Dictionary<string, object> { ["type"] = "object" }),
        Annotations = annotations,
    };

    [Fact]
    public async Task ListsEveryPage_InOrder()
    {
        await using var server = InMemoryServer.WithPages(
            [NewTool("a"), NewTool("b")],
            [NewTool("c")],
            [NewTool("d"), NewTool("e")]);

        ScanResult result = await ServerScanner.ScanAsync(server.ClientTransport, Target, Timeout, null, null, CancellationToken.None);

        Assert.Equal(["a", "b", "c", "d", "e"], result.Tools.Select(t => t.Name));
        Assert.Equal("in-memory", result.ServerName);
        Assert.Equal("9.9", result.ServerVersion);
        Assert.Empty(result.Warnings);
    }

    [Fact]
    public async Task ANameListedTwice_KeepsTheFirstDefinition_AndWarns()
    {
        await using var server = InMemoryServer.WithPages(
            [NewTool("a", "first")],
            [NewTool("a", "second"), NewTool("b")]);

        ScanResult result = await ServerScanner.ScanAsync(server.ClientTransport, Target, Timeout, null, null, CancellationToken.None);

        Assert.Equal(["a", "b"], result.Tools.Select(t => t.Name));
        Assert.Equal("first", result.Tools[0].Description);
        Assert.Contains(result.Warnings, w => w.Contains("'a' more than once", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnnotationsAndSchema_AreCarriedOver()
    {
        await using var server = InMemoryServer.WithPages(
            [NewTool("x", "d", new ToolAnnotations { ReadOnlyHint = false, DestructiveHint = true, IdempotentHint = true, OpenWorldHint = false })]);

        ScanResult result = await ServerScanner.ScanAsync(server.ClientTransport, Target, Timeout, null, null, CancellationToken.None);

        Classification.ScannedTool tool = Assert.Single(result.Tools);
        Assert.Equal(new Classification.ToolHints(false, true, true, false), tool.Hints);
        Assert.Equal("object", tool.InputSchema!.Value.GetProperty("type").GetString());
    }

    [Fact]
    public async Task AServerWithNoTools_IsAnError()
    {
        await using var server = InMemoryServer.WithPages();

        var e = await Assert.ThrowsAsync<ScanException>(() => ServerScanner.ScanAsync(server.ClientTransport, Target, Timeout, null, null, CancellationToken.None));

        Assert.Equal(ScanFailure.NoTools, e.Failure);
        Assert.Contains("lists no tools", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AServerWithoutTheToolsCapability_IsAnError()
    {
        await using var server = new InMemoryServer(new McpServerOptions { ServerInfo = new Implementation { Name = "prompts-only", Version = "1" } });

        var e = await Assert.ThrowsAsync<ScanException>(() => ServerScanner.ScanAsync(server.ClientTransport, Target, Timeout, null, null, CancellationToken.None));

        Assert.Equal(ScanFailure.NoTools, e.Failure);
        Assert.Contains("'tools' capability", e.Message, StringComparison.Ordinal);
    }
}
