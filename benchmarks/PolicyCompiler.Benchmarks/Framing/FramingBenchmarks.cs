using System.Buffers;
using BenchmarkDotNet.Attributes;
using PolicyCompiler.Gateway;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Generated;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Benchmarks.Framing;

/// <summary>
/// The gateway's per-message work on the client → upstream side, without threads or pipes: classify a
/// <c>tools/call</c> from bytes (one segment, and split across segments the way a pipe can deliver it),
/// forward a message that is not a tool call (frame, classify, copy to the upstream's buffer), and the
/// whole synchronous step sequence for a tool call (frame, classify, decide with the compiled
/// bench.json evaluator, forward). One operation is one message; 1 s / Mean is messages per second on
/// one core.
/// </summary>
[MemoryDiagnoser]
public class FramingBenchmarks
{
    private readonly MessageClassifier _classifier = new();
    private readonly ArrayBufferWriter<byte> _upstream = new(4096);
    private readonly IPolicyEvaluator _evaluator = new BenchPolicyEvaluator(new PolicyEvaluatorOptions());
    private LineFramer _framer = new(GatewayOptions.DefaultMaxMessageBytes);
    private ReadOnlySequence<byte> _toolCall;
    private ReadOnlySequence<byte> _toolCallSplit;
    private ReadOnlySequence<byte> _toolCallLine;
    private ReadOnlySequence<byte> _notificationLine;

    /// <summary>Builds the inputs once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        byte[] call = Messages.ToolCall;
        _toolCall = Segments.Contiguous(call);

        // Cut inside the method string, inside the tool name and inside the arguments object: every
        // token the classifier needs straddles a segment boundary (the slow path of Utf8JsonReader).
        _toolCallSplit = Segments.Split(
            call,
            Segments.IndexOf(call, "tools/call"u8) + 3,
            Segments.IndexOf(call, "list_k8s_resources"u8) + 5,
            Segments.IndexOf(call, "prod-eu-1"u8) + 4);
        _toolCallLine = Segments.Contiguous(Messages.Line(call));
        _notificationLine = Segments.Contiguous(Messages.Line(Messages.Notification));
    }

    /// <summary>The decoded tool name of the last classified message (for the smoke test).</summary>
    public string LastToolName => System.Text.Encoding.UTF8.GetString(_classifier.ToolName);

    /// <summary>The raw arguments of the last classified message (for the smoke test).</summary>
    public string LastArguments => System.Text.Encoding.UTF8.GetString(_classifier.ArgumentsJson);

    /// <summary>Whether <see cref="ClassifyToolCallSplit"/>'s input really spans several segments.</summary>
    public int SplitSegmentCount
    {
        get
        {
            int count = 0;
            foreach (ReadOnlyMemory<byte> _ in _toolCallSplit)
            {
                count++;
            }

            return count;
        }
    }

    /// <summary>Step 2 for a tools/call in one segment (the usual case: pipe blocks are 4 KB).</summary>
    [Benchmark(Baseline = true)]
    public bool ClassifyToolCall() => IsToolCall(_classifier.Classify(_toolCall, strict: true));

    /// <summary>Step 2 for the same tools/call split into four segments.</summary>
    [Benchmark]
    public bool ClassifyToolCallSplit() => IsToolCall(_classifier.Classify(_toolCallSplit, strict: true));

    /// <summary>Steps 1, 2 and 4 for a notification: frame, classify, copy to the upstream's buffer.</summary>
    [Benchmark]
    public int ForwardNotification()
    {
        ReadOnlySequence<byte> buffer = _notificationLine;
        _framer.TryReadMessage(ref buffer, isCompleted: false, out ReadOnlySequence<byte> message);
        _classifier.Classify(message, strict: true);
        SequenceWriter.WriteLine(_upstream, message);
        int written = _upstream.WrittenCount;
        _upstream.ResetWrittenCount();
        return written;
    }

    /// <summary>Steps 1–4 for a tools/call: frame, classify, decide (compiled), forward.</summary>
    [Benchmark]
    public DecisionKind FrameDecideForwardToolCall()
    {
        ReadOnlySequence<byte> buffer = _toolCallLine;
        _framer.TryReadMessage(ref buffer, isCompleted: false, out ReadOnlySequence<byte> message);
        _classifier.Classify(message, strict: true);
        Decision decision = _evaluator.Evaluate(new ToolCall(_classifier.ToolName, _classifier.ArgumentsJson, "agent", "session"));
        if (decision.Kind == DecisionKind.Allow)
        {
            decision.Reservation.Commit();
            SequenceWriter.WriteLine(_upstream, message);
            _upstream.ResetWrittenCount();
        }

        return decision.Kind;
    }

    private bool IsToolCall(ClassifyStatus status) => status == ClassifyStatus.Ok && _classifier.Method == KnownMethod.ToolsCall;
}
