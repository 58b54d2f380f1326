using System.Buffers;
using System.Text;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;

namespace PolicyCompiler.Gateway.Tests.Framing;

/// <summary>The hot path allocates nothing in steady state: framing, classification and the duplicate-key check.</summary>
public class AllocationTests
{
    [Fact]
    public void FramingAndClassifying_AllocateNothingInSteadyState()
    {
        string stream =
            """{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"Create\u0043odeConnection","arguments":{"repo":"a/b","opts":{"x":[1,{"y":2}],"\u007a":3}}}}""" + "\n" +
            """{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}""" + "\n" +
            """{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":12,"reason":"gave up"}}""" + "\n" +
            """{"jsonrpc":"2.0","id":13,"result":{"tools":[{"name":"a"}]}}""" + "\n";
        byte[] bytes = Encoding.UTF8.GetBytes(stream);
        ReadOnlySequence<byte> contiguous = new(bytes);
        ReadOnlySequence<byte> split = Segments.Split(bytes, 40, 41, 97, 150, 260);
        var classifier = new MessageClassifier();

        int Run(ReadOnlySequence<byte> input)
        {
            var framer = new LineFramer(1 << 20);
            int ok = 0;
            while (framer.TryReadMessage(ref input, true, out ReadOnlySequence<byte> message) == FrameStatus.Message)
            {
                if (classifier.Classify(message, strict: true) == ClassifyStatus.Ok)
                {
                    ok++;
                }
            }

            return ok;
        }

        // Warm up: buffers grow to their working size once.
        Assert.Equal(4, Run(contiguous));
        Assert.Equal(4, Run(split));

        long before = GC.GetAllocatedBytesForCurrentThread();
        int total = 0;
        for (int i = 0; i < 100; i++)
        {
            total += Run(contiguous) + Run(split);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(800, total);
        Assert.Equal(0, allocated);
    }
}
