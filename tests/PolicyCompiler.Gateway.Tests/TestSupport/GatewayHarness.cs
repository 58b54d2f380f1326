using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Tests.TestSupport;

/// <summary>
/// One gateway session over in-memory pipes: the test plays both the client and the upstream server.
/// Reads wait for a line with a generous safety timeout (a hang fails the test instead of blocking the run).
/// </summary>
internal sealed class GatewayHarness : IAsyncDisposable
{
    private static readonly TimeSpan SafetyTimeout = TimeSpan.FromSeconds(20);

    private readonly Pipe _clientToGateway = new();
    private readonly Pipe _gatewayToClient = new();
    private readonly Pipe _upstreamToGateway = new();
    private readonly Pipe _gatewayToUpstream = new();

    public GatewayHarness(IPolicyEvaluator evaluator, GatewayOptions? options = null, AuditLog? audit = null)
    {
        Options = options ?? new GatewayOptions { Grant = "alice", Session = "s1" };
        Run = StdioGateway.RunAsync(
            _clientToGateway.Reader,
            _gatewayToClient.Writer,
            _upstreamToGateway.Reader,
            _gatewayToUpstream.Writer,
            evaluator,
            Options,
            audit);
    }

    public GatewayOptions Options { get; }

    public Task<GatewayRunResult> Run { get; }

    public Task ClientSendAsync(string line) => SendAsync(_clientToGateway.Writer, line + "\n");

    public Task ClientSendRawAsync(byte[] bytes) => SendAsync(_clientToGateway.Writer, bytes);

    public Task UpstreamSendAsync(string line) => SendAsync(_upstreamToGateway.Writer, line + "\n");

    public Task<string?> ClientReceiveAsync() => ReadLineAsync(_gatewayToClient.Reader);

    public Task<string?> UpstreamReceiveAsync() => ReadLineAsync(_gatewayToUpstream.Reader);

    public Task CloseClientAsync() => _clientToGateway.Writer.CompleteAsync().AsTask();

    public Task CloseUpstreamAsync() => _upstreamToGateway.Writer.CompleteAsync().AsTask();

    public async ValueTask DisposeAsync()
    {
        await _clientToGateway.Writer.CompleteAsync();
        await _upstreamToGateway.Writer.CompleteAsync();
        await Run.WaitAsync(SafetyTimeout);
    }

    private static async Task SendAsync(PipeWriter writer, string text) => await SendAsync(writer, Encoding.UTF8.GetBytes(text));

    private static async Task SendAsync(PipeWriter writer, byte[] bytes)
    {
        await writer.WriteAsync(bytes);
    }

    /// <summary>The next line (without its newline), or null at the end of the stream.</summary>
    private static async Task<string?> ReadLineAsync(PipeReader reader)
    {
        using var timeout = new CancellationTokenSource(SafetyTimeout);
        while (true)
        {
            ReadResult read = await reader.ReadAsync(timeout.Token);
            ReadOnlySequence<byte> buffer = read.Buffer;
            SequencePosition? newline = buffer.PositionOf((byte)'\n');
            if (newline is not null)
            {
                string line = Encoding.UTF8.GetString(buffer.Slice(0, newline.Value));
                reader.AdvanceTo(buffer.GetPosition(1, newline.Value));
                return line;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                return null;
            }
        }
    }
}
