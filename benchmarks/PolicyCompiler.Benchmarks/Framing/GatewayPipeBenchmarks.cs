using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using BenchmarkDotNet.Attributes;
using PolicyCompiler.Gateway;
using PolicyCompiler.Gateway.Transport.Stdio;
using PolicyCompiler.Generated;

namespace PolicyCompiler.Benchmarks.Framing;

/// <summary>
/// The whole per-message path of a stdio session, in memory:
/// <code>
///   client pipe ──▶ StdioGateway (frame, classify, decide, forward) ──▶ upstream pipe ──▶ echo server
///   drain ◀── client pipe ◀── StdioGateway (frame, classify, match id, settle) ◀── upstream pipe ◀──┘
/// </code>
/// One operation is one request and its response (so two messages framed and classified by the
/// gateway). <see cref="Pipelined"/> keeps a batch of requests in flight (throughput: messages/s =
/// 1 s / Mean); <see cref="RoundTrip"/> sends the next request only when the previous answer arrived
/// (latency, dominated by the thread-pool hops between the four loops). Allocated is per request,
/// counted over every thread (the gateway's loops, the echo server and the drain).
/// </summary>
[MemoryDiagnoser]
public class GatewayPipeBenchmarks
{
    /// <summary>Requests in flight per <see cref="Pipelined"/> operation batch.</summary>
    public const int Batch = 1000;

    /// <summary>Sequential round trips per <see cref="RoundTrip"/> invocation.</summary>
    public const int Sequential = 100;

    private const int ChunkBytes = 4096;

    private static ReadOnlySpan<byte> ErrorKey => "\"error\""u8;

    private readonly CompletionSignal _signal = new();
    private Pipe _clientToGateway = null!;
    private Pipe _gatewayToClient = null!;
    private Pipe _gatewayToUpstream = null!;
    private Pipe _upstreamToGateway = null!;
    private Task<GatewayRunResult> _gateway = null!;
    private Task _echo = null!;
    private Task _drain = null!;
    private byte[] _batch = null!;
    private byte[] _single = null!;
    private byte[] _drainScratch = new byte[4096];
    private long _received;
    private long _target;
    private long _errors;
    private volatile bool _armed;

    /// <summary>The request sent: <c>tools/call</c> (decided by the compiled bench.json, allowed) or <c>ping</c> (forwarded untouched).</summary>
    [Params("tools/call", "ping")]
    public string Method { get; set; } = "tools/call";

    /// <summary>
    /// Where pipe continuations run. <c>inline</c>: on the thread that flushed, so the client's write
    /// drives the gateway, the echo server and the drain on one thread (one core's throughput, no
    /// thread-pool hand-offs, which also allocate a work item each in the runtime's scheduler).
    /// <c>threadpool</c>: each loop resumes on the thread pool, as separate stdio streams would.
    /// </summary>
    [Params("inline", "threadpool")]
    public string Scheduling { get; set; } = "inline";

    /// <summary>Responses the client side has received so far.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Responses that carried a JSON-RPC error (a refused or failed request); 0 when the path under test is the one measured.</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Starts the gateway, the echo upstream and the client drain.</summary>
    [GlobalSetup]
    public void Setup()
    {
        PipeScheduler scheduler = Scheduling == "inline" ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        var pipeOptions = new PipeOptions(readerScheduler: scheduler, writerScheduler: scheduler, useSynchronizationContext: false);
        _clientToGateway = new Pipe(pipeOptions);
        _gatewayToClient = new Pipe(pipeOptions);
        _gatewayToUpstream = new Pipe(pipeOptions);
        _upstreamToGateway = new Pipe(pipeOptions);

        _batch = Requests(1, Batch);
        _single = Requests(Batch + 1, 1);

        var options = new GatewayOptions { Grant = "agent", Session = "2f6c1d0e9b8a4c7d8e5f60718293a4b5" };
        _gateway = StdioGateway.RunAsync(
            _clientToGateway.Reader,
            _gatewayToClient.Writer,
            _upstreamToGateway.Reader,
            _gatewayToUpstream.Writer,
            new BenchPolicyEvaluator(),
            options);
        _echo = Task.Run(() => EchoUpstream.RunAsync(_gatewayToUpstream.Reader, _upstreamToGateway.Writer));
        _drain = Task.Run(DrainAsync);
    }

    /// <summary>Closes the client side and waits for the session to end.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _clientToGateway.Writer.Complete();
        if (!Task.WaitAll([_gateway, _echo, _drain], TimeSpan.FromSeconds(10)))
        {
            throw new TimeoutException("the gateway session did not end after the client closed its side");
        }
    }

    /// <summary><see cref="Batch"/> requests written at once, then every response awaited.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public async Task Pipelined()
    {
        // Streamed in 4 KB writes, cut wherever they fall (mid-message too), as a client's stdout
        // reaches the gateway's stdin: writing all 170 KB at once would park 40+ pipe blocks in the
        // client pipe, exhaust the shared array pool and count the harness's buffers as the gateway's.
        Arm(Batch);
        PipeWriter writer = _clientToGateway.Writer;
        for (int offset = 0; offset < _batch.Length; offset += ChunkBytes)
        {
            writer.Write(_batch.AsSpan(offset, Math.Min(ChunkBytes, _batch.Length - offset)));
            await writer.FlushAsync().ConfigureAwait(false);
        }

        await _signal.WaitAsync().ConfigureAwait(false);
    }

    /// <summary><see cref="Sequential"/> requests, each sent after the previous response arrived.</summary>
    [Benchmark(OperationsPerInvoke = Sequential)]
    public async Task RoundTrip()
    {
        // The awaits stay in this one method: a helper async method per request would allocate its
        // state machine on every request and be counted as the gateway's.
        for (int i = 0; i < Sequential; i++)
        {
            Arm(1);
            _clientToGateway.Writer.Write(_single);
            await _clientToGateway.Writer.FlushAsync().ConfigureAwait(false);
            await _signal.WaitAsync().ConfigureAwait(false);
        }
    }

    private void Arm(int count)
    {
        _signal.Reset();
        Interlocked.Exchange(ref _target, Interlocked.Read(ref _received) + count);
        _armed = true;
    }

    private async Task DrainAsync()
    {
        PipeReader reader = _gatewayToClient.Reader;
        try
        {
            while (true)
            {
                ReadResult read = await reader.ReadAsync().ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = read.Buffer;
                long lines = 0;
                while (true)
                {
                    SequencePosition? newline = buffer.PositionOf((byte)'\n');
                    if (newline is null)
                    {
                        break;
                    }

                    ReadOnlySequence<byte> line = buffer.Slice(0, newline.Value);
                    if (line.IsSingleSegment ? line.FirstSpan.IndexOf(ErrorKey) >= 0 : ContainsError(line))
                    {
                        Interlocked.Increment(ref _errors);
                    }

                    buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
                    lines++;
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                long received = Interlocked.Add(ref _received, lines);
                if (_armed && received >= Interlocked.Read(ref _target))
                {
                    _armed = false;
                    _signal.Set();
                }

                if (read.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private bool ContainsError(in ReadOnlySequence<byte> line)
    {
        // A response split across pipe blocks: gather it into a reused buffer (only the drain thread runs this).
        if (_drainScratch.Length < line.Length)
        {
            _drainScratch = new byte[line.Length * 2];
        }

        line.CopyTo(_drainScratch);
        return _drainScratch.AsSpan(0, (int)line.Length).IndexOf(ErrorKey) >= 0;
    }

    private byte[] Requests(int firstId, int count)
    {
        var text = new StringBuilder();
        for (int id = firstId; id < firstId + count; id++)
        {
            string idText = id.ToString(CultureInfo.InvariantCulture);
            text.Append("""{"jsonrpc":"2.0","id":""").Append(idText);
            text.Append(Method == "ping"
                ? ""","method":"ping"}"""
                : ""","method":"tools/call","params":{"name":"list_k8s_resources","arguments":{"cluster_name":"prod-eu-1","kind":"Pod","api_version":"v1","namespace":"shop"}}}""");
            text.Append('\n');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }
}
