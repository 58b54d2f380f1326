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
    public async Task UpstreamDying_WhileTheClientsReadCannotBeInterrupted_StillEndsTheSession()
    {
        // Like a real stdin: after the request, the client's stream blocks and ignores cancellation.
        var clientIn = new UninterruptibleStream("""{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ls"}}""" + "\n");
        var clientOut = new MemoryStream();
        int exitCode = await StdioServerProcess.RunAsync(
            "/bin/sh",
            ["-c", "read line; exit 3"],
            clientIn,
            clientOut,
            new FakeEvaluator(),
            new GatewayOptions { ShutdownGrace = TimeSpan.FromSeconds(2) },
            audit: null,
            NullLogger.Instance).WaitAsync(SafetyTimeout);

        Assert.Equal(3, exitCode);
        using JsonDocument reply = JsonDocument.Parse(Encoding.UTF8.GetString(clientOut.ToArray()).Trim());
        Assert.Equal(4, reply.RootElement.GetProperty("id").GetInt32());
        Assert.Equal(JsonRpcErrorCodes.UpstreamClosed, reply.RootElement.GetProperty("error").GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task ChildExitingWhileAGrandchildHoldsItsOutput_EndsTheSessionAfterTheGrace()
    {
        // The shell exits 5 but leaves `sleep` holding its stdout: the child's exit, not the end of output, ends the session.
        var clientIn = new UninterruptibleStream("""{"jsonrpc":"2.0","id":1,"method":"ping"}""" + "\n");
        var clientOut = new MemoryStream();
        int exitCode = await StdioServerProcess.RunAsync(
            "/bin/sh",
            ["-c", "read line; sleep 60 & exit 5"],
            clientIn,
            clientOut,
            new FakeEvaluator(),
            new GatewayOptions { ShutdownGrace = TimeSpan.FromSeconds(1) },
            audit: null,
            NullLogger.Instance).WaitAsync(SafetyTimeout);

        Assert.Equal(5, exitCode);
        Assert.Contains("\"id\":1", Encoding.UTF8.GetString(clientOut.ToArray()));
    }

    [Fact]
    public void UpstreamClosedExitCode_IsNeverZero()
    {
        Assert.Equal(1, StdioServerProcess.UpstreamClosedExitCode(0));
        Assert.Equal(3, StdioServerProcess.UpstreamClosedExitCode(3));
        Assert.Equal(143, StdioServerProcess.UpstreamClosedExitCode(143));
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

    /// <summary>Yields its text, then blocks forever and, like a console stream, ignores cancellation.</summary>
    private sealed class UninterruptibleStream(string text) : Stream
    {
        private readonly byte[] _bytes = Encoding.UTF8.GetBytes(text);
        private readonly TaskCompletionSource<int> _never = new();
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_position < _bytes.Length)
            {
                int count = Math.Min(buffer.Length, _bytes.Length - _position);
                _bytes.AsMemory(_position, count).CopyTo(buffer);
                _position += count;
                return ValueTask.FromResult(count);
            }

            return new ValueTask<int>(_never.Task);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
