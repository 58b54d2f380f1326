using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;
using PolicyCompiler.Gateway.Transport.Stdio;

namespace PolicyCompiler.Gateway.Tests.Transport;

/// <summary>The gateway in front of real child processes (POSIX shell scripts standing in for servers).</summary>
public class StdioServerProcessTests
{
    private static readonly TimeSpan SafetyTimeout = TimeSpan.FromSeconds(30);

    private static async Task<(int ExitCode, string Output)> RunAsync(string script, string input, bool closeInput = true)
    {
        var clientIn = new Pipe();
        var clientOut = new MemoryStream();
        await clientIn.Writer.WriteAsync(Encoding.UTF8.GetBytes(input));
        if (closeInput)
        {
            await clientIn.Writer.CompleteAsync();
        }

        var policy = new FakeEvaluator();
        policy.Denied.Add("rm");
        int exitCode = await StdioServerProcess.RunAsync(
            "/bin/sh",
            ["-c", script],
            clientIn.Reader.AsStream(),
            clientOut,
            policy,
            new GatewayOptions { ShutdownGrace = TimeSpan.FromSeconds(2) },
            audit: null,
            NullLogger.Instance).WaitAsync(SafetyTimeout);
        return (exitCode, Encoding.UTF8.GetString(clientOut.ToArray()));
    }

    [Fact]
    public async Task EchoServer_SeesOnlyAllowedMessages_AndTheExitStatusIsTheChilds()
    {
        // `cat` echoes what reaches it: the client gets back exactly what the server received.
        (int exitCode, string output) = await RunAsync(
            "cat; exit 4",
            """{"jsonrpc":"2.0","method":"notifications/initialized"}""" + "\n" +
            """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}""" + "\n" +
            """{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ls"}}""" + "\n");
        Assert.Equal(4, exitCode);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("""{"jsonrpc":"2.0","method":"notifications/initialized"}""", lines);
        Assert.Contains("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ls"}}""", lines);
        Assert.DoesNotContain(lines, l => l.Contains("\"method\":\"tools/call\",\"params\":{\"name\":\"rm\"}"));
        Assert.Contains(lines, l => l.Contains("Blocked by policy: tool 'rm'"));
    }

    [Fact]
    public async Task UpstreamDyingMidSession_AnswersPendingRequests_AndExitsNonZero()
    {
        // The server reads one request and exits 0 without answering while the client stays connected.
        (int exitCode, string output) = await RunAsync(
            "read line; exit 0",
            """{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"ls"}}""" + "\n",
            closeInput: false);
        Assert.Equal(1, exitCode);
        using JsonDocument reply = JsonDocument.Parse(output.Trim());
        Assert.Equal(9, reply.RootElement.GetProperty("id").GetInt32());
        Assert.Equal(JsonRpcErrorCodes.UpstreamClosed, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task ServerIgnoringEndOfInput_IsKilledAfterTheGracePeriod()
    {
        // `exec sleep` ignores stdin: the gateway must kill it rather than hang.
        (int exitCode, _) = await RunAsync("exec sleep 600", string.Empty);
        Assert.NotEqual(0, exitCode);
    }

    [Fact]
    public async Task MissingCommand_Exits127()
    {
        var clientIn = new Pipe();
        await clientIn.Writer.CompleteAsync();
        int exitCode = await StdioServerProcess.RunAsync(
            "/nonexistent/server", [], clientIn.Reader.AsStream(), new MemoryStream(), new FakeEvaluator(), new GatewayOptions(), null, NullLogger.Instance);
        Assert.Equal(StdioServerProcess.CannotStartExitCode, exitCode);
    }
}
