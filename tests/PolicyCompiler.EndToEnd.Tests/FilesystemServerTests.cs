using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using PolicyCompiler.EndToEnd.Tests.Infrastructure;

namespace PolicyCompiler.EndToEnd.Tests;

/// <summary>
/// The shipped policies/filesystem.json, run by the interpreter (<c>policyc run</c>), in front of
/// @modelcontextprotocol/server-filesystem (npm, pinned): paths are confined to the workspace, '..' is
/// refused, the .git directory is off limits. The policy's workspace (/srv/workspace) is rewritten to
/// a temporary directory; nothing else of the shipped policy changes.
/// </summary>
public sealed class FilesystemServerTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "pc-fs-" + Guid.NewGuid().ToString("N"));
    private string _workspace = "";
    private string _policy = "";
    private McpClient? _client;

    public async Task InitializeAsync()
    {
        _workspace = Path.Combine(_root, "workspace");
        Directory.CreateDirectory(Path.Combine(_workspace, ".git"));
        File.WriteAllText(Path.Combine(_workspace, "notes.txt"), "inside");
        File.WriteAllText(Path.Combine(_root, "secret.txt"), "outside");

        _policy = Path.Combine(_root, "filesystem.json");
        File.WriteAllText(_policy, File.ReadAllText(Path.Combine(Repo.Root, "policies", "filesystem.json")).Replace("/srv/workspace", _workspace));

        var policyc = Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");
        _client = await McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "filesystem",
            Command = "dotnet",
            // The server may see the whole temporary root, so only the policy keeps the agent in the workspace.
            Arguments = [policyc, "run", _policy, "--", Repo.NpmBin("mcp-server-filesystem"), _root],
        }));
    }

    public async Task DisposeAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private static string Text(CallToolResult r) => string.Concat(r.Content.OfType<TextContentBlock>().Select(t => t.Text));

    private static string? Decision(CallToolResult r) => (string?)r.Meta?["policycompiler/decision"]?["decision"];

    [Fact]
    public async Task Reads_inside_the_workspace_reach_the_server()
    {
        var result = await _client!.CallToolAsync("read_text_file", new Dictionary<string, object?> { ["path"] = Path.Combine(_workspace, "notes.txt") });

        Assert.Null(Decision(result));
        Assert.Equal("inside", Text(result));
    }

    [Fact]
    public async Task Paths_outside_the_workspace_and_traversal_are_refused_by_the_policy()
    {
        var outside = await _client!.CallToolAsync("read_text_file", new Dictionary<string, object?> { ["path"] = Path.Combine(_root, "secret.txt") });
        var traversal = await _client.CallToolAsync("read_text_file", new Dictionary<string, object?> { ["path"] = _workspace + "/../secret.txt" });
        var gitWrite = await _client.CallToolAsync("write_file", new Dictionary<string, object?> { ["path"] = _workspace + "/.git/config", ["content"] = "x" });

        Assert.Equal("deny", Decision(outside));
        Assert.Contains("must be under", Text(outside));
        Assert.Equal("deny", Decision(traversal));
        Assert.Contains("traversal", Text(traversal));
        Assert.Equal("deny", Decision(gitWrite));
        Assert.DoesNotContain("outside", Text(outside) + Text(traversal));
        Assert.False(File.Exists(Path.Combine(_workspace, ".git", "config")));
    }

    [Fact]
    public async Task Tools_the_policy_denies_are_not_listed()
    {
        var names = (await _client!.ListToolsAsync()).Select(t => t.Name).ToHashSet();

        Assert.Contains("read_text_file", names);
        Assert.Contains("write_file", names);
        Assert.DoesNotContain("read_multiple_files", names);
    }
}
