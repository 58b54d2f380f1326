using PolicyCompiler.Benchmarks.Framing;

namespace PolicyCompiler.Benchmarks.Tests;

/// <summary>The in-memory gateway session answers every request through the echo upstream.</summary>
public class GatewayPipeBenchmarksTests
{
    [Theory]
    [InlineData("tools/call", "inline")]
    [InlineData("ping", "inline")]
    [InlineData("tools/call", "threadpool")]
    [InlineData("ping", "threadpool")]
    public async Task PipelinedAndRoundTrip_EveryRequestIsAnsweredByTheUpstream(string method, string scheduling)
    {
        var benchmarks = new GatewayPipeBenchmarks { Method = method, Scheduling = scheduling };
        benchmarks.Setup();
        try
        {
            await benchmarks.Pipelined().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(GatewayPipeBenchmarks.Batch, benchmarks.Received);
            await benchmarks.RoundTrip().WaitAsync(TimeSpan.FromSeconds(30));
            await benchmarks.Pipelined().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(2 * GatewayPipeBenchmarks.Batch + GatewayPipeBenchmarks.Sequential, benchmarks.Received);
            Assert.Equal(0, benchmarks.Errors);
        }
        finally
        {
            benchmarks.Cleanup();
        }
    }
}
