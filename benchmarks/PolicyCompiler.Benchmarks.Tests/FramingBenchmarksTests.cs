using PolicyCompiler.Benchmarks.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Benchmarks.Tests;

/// <summary>The framing benchmarks classify, forward and decide what they claim to.</summary>
public class FramingBenchmarksTests
{
    private const string ExpectedArguments = """{"cluster_name":"prod-eu-1","kind":"Pod","api_version":"v1","namespace":"shop","label_selector":"app=web"}""";

    [Fact]
    public void ClassifyToolCall_ReadsNameAndArguments()
    {
        var benchmarks = new FramingBenchmarks();
        benchmarks.Setup();

        Assert.True(benchmarks.ClassifyToolCall());
        Assert.Equal("list_k8s_resources", benchmarks.LastToolName);
        Assert.Equal(ExpectedArguments, benchmarks.LastArguments);
    }

    [Fact]
    public void ClassifyToolCallSplit_IsReallySplit_AndReadsTheSame()
    {
        var benchmarks = new FramingBenchmarks();
        benchmarks.Setup();

        Assert.Equal(4, benchmarks.SplitSegmentCount);
        Assert.True(benchmarks.ClassifyToolCallSplit());
        Assert.Equal("list_k8s_resources", benchmarks.LastToolName);
        Assert.Equal(ExpectedArguments, benchmarks.LastArguments);
    }

    [Fact]
    public void ForwardNotification_WritesTheLineUnchanged()
    {
        var benchmarks = new FramingBenchmarks();
        benchmarks.Setup();

        Assert.Equal(Messages.Notification.Length + 1, benchmarks.ForwardNotification());
        Assert.Equal(Messages.Notification.Length + 1, benchmarks.ForwardNotification());
    }

    [Fact]
    public void FrameDecideForwardToolCall_Allows_AndAllocatesNothing()
    {
        var benchmarks = new FramingBenchmarks();
        benchmarks.Setup();
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(DecisionKind.Allow, benchmarks.FrameDecideForwardToolCall());
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            benchmarks.FrameDecideForwardToolCall();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
