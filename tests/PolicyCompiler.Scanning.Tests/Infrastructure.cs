using System.CommandLine;
using System.IO.Pipelines;
using System.Reflection;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;
using PolicyCompiler.Cli;

namespace PolicyCompiler.Scanning.Tests;

/// <summary>Paths inside the repository and the test output.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Configuration { get; } =
        typeof(Repo).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;

    public static string EksLikeServerDll =>
        Path.Combine(Root, "tests", "Servers", "EksLikeServer", "bin", Configuration, "net10.0", "EksLikeServer.dll");

    /// <summary>An npm-installed server's launcher (tests/servers-npm/node_modules/.bin; scripts/test.sh runs npm ci).</summary>
    public static string NpmBin(string name)
    {
        string path = Path.Combine(Root, "tests", "servers-npm", "node_modules", ".bin", name);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{path} is missing: run `npm ci` in tests/servers-npm (scripts/test.sh does it).");
        }
        return path;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PolicyCompiler.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("PolicyCompiler.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>Runs <c>policyc</c> in-process with captured output.</summary>
internal static class Policyc
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await Program.CreateRootCommand().Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }
}

/// <summary>An MCP server (the official SDK) running in this process, connected to a client transport through pipes.</summary>
internal sealed class InMemoryServer : IAsyncDisposable
{
    private readonly McpServer _server;
    private readonly Task _run;
    private readonly CancellationTokenSource _stop = new();

    public InMemoryServer(McpServerOptions options)
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        _server = McpServer.Create(new StreamServerTransport(toServer.Reader.AsStream(), toClient.Writer.AsStream(), "in-memory"), options);
        _run = _server.RunAsync(_stop.Token);
        ClientTransport = new StreamClientTransport(toServer.Writer.AsStream(), toClient.Reader.AsStream());
    }

    public ModelContextProtocol.Client.IClientTransport ClientTransport { get; }

    /// <summary>A server whose tools/list answers from <paramref name="pages"/>, page i+1 behind cursor "p{i+1}".</summary>
    public static InMemoryServer WithPages(params Tool[][] pages) => new(new McpServerOptions
    {
        ServerInfo = new Implementation { Name = "in-memory", Version = "9.9" },
        Capabilities = new ServerCapabilities { Tools = new ToolsCapability() },
        Handlers = new McpServerHandlers
        {
            ListToolsHandler = (request, _) =>
            {
                int page = request.Params?.Cursor is { } cursor ? int.Parse(cursor[1..], System.Globalization.CultureInfo.InvariantCulture) : 0;
                return ValueTask.FromResult(new ListToolsResult
                {
                    Tools = pages.Length == 0 ? [] : [.. pages[page]],
                    NextCursor = page + 1 < pages.Length ? "p" + (page + 1) : null,
                });
            },
        },
    });

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _run;
        }
        catch (OperationCanceledException)
        {
        }
        await _server.DisposeAsync();
        _stop.Dispose();
    }
}
