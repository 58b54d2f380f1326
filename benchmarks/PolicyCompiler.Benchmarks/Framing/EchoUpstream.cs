using System.Buffers;
using System.IO.Pipelines;

namespace PolicyCompiler.Benchmarks.Framing;

/// <summary>
/// A near-zero-cost MCP server: answers every request line with a fixed result carrying the request's
/// id, so the gateway's own cost stands out. Expects integer ids written as <c>"id":N,</c> (what
/// <see cref="GatewayPipeBenchmarks"/> sends); ignores notifications. Allocation-free per message.
/// </summary>
public static class EchoUpstream
{
    private static ReadOnlySpan<byte> IdKey => "\"id\":"u8;

    private static ReadOnlySpan<byte> ResponseStart => "{\"jsonrpc\":\"2.0\",\"id\":"u8;

    private static ReadOnlySpan<byte> ResponseEnd => ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],\"isError\":false}}\n"u8;

    /// <summary>Answers requests from <paramref name="requests"/> on <paramref name="responses"/> until the gateway closes its side.</summary>
    public static async Task RunAsync(PipeReader requests, PipeWriter responses)
    {
        byte[] scratch = new byte[4096];
        try
        {
            while (true)
            {
                ReadResult read = await requests.ReadAsync().ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = read.Buffer;
                while (TryTakeLine(ref buffer, out ReadOnlySequence<byte> line))
                {
                    ReadOnlySpan<byte> text = line.IsSingleSegment ? line.FirstSpan : Gather(line, ref scratch);
                    Answer(text, responses);
                }

                requests.AdvanceTo(buffer.Start, buffer.End);
                if (responses.UnflushedBytes > 0)
                {
                    await responses.FlushAsync().ConfigureAwait(false);
                }

                if (read.IsCompleted)
                {
                    break;
                }
            }
        }
        finally
        {
            await requests.CompleteAsync().ConfigureAwait(false);
            await responses.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static bool TryTakeLine(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> line)
    {
        SequencePosition? newline = buffer.PositionOf((byte)'\n');
        if (newline is null)
        {
            line = default;
            return false;
        }

        line = buffer.Slice(0, newline.Value);
        buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
        return true;
    }

    private static ReadOnlySpan<byte> Gather(in ReadOnlySequence<byte> line, ref byte[] scratch)
    {
        if (scratch.Length < line.Length)
        {
            scratch = new byte[line.Length * 2];
        }

        line.CopyTo(scratch);
        return scratch.AsSpan(0, (int)line.Length);
    }

    private static void Answer(ReadOnlySpan<byte> request, PipeWriter responses)
    {
        int key = request.IndexOf(IdKey);
        if (key < 0)
        {
            return; // a notification: nothing to answer
        }

        ReadOnlySpan<byte> rest = request.Slice(key + IdKey.Length);
        int end = rest.IndexOfAny((byte)',', (byte)'}');
        ReadOnlySpan<byte> id = end < 0 ? rest : rest.Slice(0, end);
        responses.Write(ResponseStart);
        responses.Write(id);
        responses.Write(ResponseEnd);
    }
}
