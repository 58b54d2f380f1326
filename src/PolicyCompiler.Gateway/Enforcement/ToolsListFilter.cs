using System.Buffers;
using System.Text.Json;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Gateway.Enforcement;

/// <summary>
/// Removes from a <c>tools/list</c> result (MCP server/tools#listing-tools) every tool the policy does
/// not list (<see cref="IPolicyEvaluator.IsListed"/>): hidden tools and tools every call would deny.
/// Each page of a paginated list is filtered on its own; <c>nextCursor</c> and every other field are
/// kept byte-for-byte. The rewritten message is the original bytes with the removed array elements cut
/// out, so nothing else about the server's answer changes. A tool whose name cannot be read
/// unambiguously (not an object, no string name, the name twice) is removed: fail closed.
/// With a <see cref="PinVerifier"/>, a listed tool that the policy pins is also hashed and removed
/// when its definition is not the pinned one (docs/scan.md, "Pinning").
/// </summary>
internal sealed class ToolsListFilter
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 128 };

    private readonly PinVerifier? _pins;

    /// <summary>Creates a filter; <paramref name="pins"/> is the session's pin state (null: no pin checks).</summary>
    public ToolsListFilter(PinVerifier? pins = null)
    {
        _pins = pins;
    }

    private long[] _starts = new long[64];
    private long[] _ends = new long[64];
    private bool[] _keep = new bool[64];
    private byte[] _scratch = new byte[128];

    /// <summary>
    /// Writes the filtered message (and its newline) to <paramref name="output"/> and returns true, or
    /// returns false without writing when nothing is removed (the caller forwards the original).
    /// </summary>
    /// <param name="message">The whole response.</param>
    /// <param name="resultStart">Where its <c>result</c> starts.</param>
    /// <param name="resultLength">The result's length.</param>
    /// <param name="evaluator">The policy.</param>
    /// <param name="output">Where the filtered message goes.</param>
    /// <param name="removed">How many tools were removed.</param>
    /// <param name="pins">The session's pin state when it is not the one given at construction (HTTP: one per session).</param>
    public bool TryFilter(in ReadOnlySequence<byte> message, long resultStart, long resultLength, IPolicyEvaluator evaluator, IBufferWriter<byte> output, out int removed, PinVerifier? pins = null)
    {
        PinVerifier? verifier = pins ?? _pins;
        removed = 0;
        ReadOnlySequence<byte> result = message.Slice(resultStart, resultLength);
        var reader = new Utf8JsonReader(result, ReaderOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        int count = 0;
        long arrayOpen = -1, arrayClose = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isTools = ValueEquals(ref reader, "tools"u8);
            reader.Read();
            if (!isTools || reader.TokenType != JsonTokenType.StartArray || arrayOpen >= 0)
            {
                reader.Skip();
                continue;
            }

            arrayOpen = reader.TokenStartIndex;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                long start = reader.TokenStartIndex;
                int nameLength = 0;
                bool keep = reader.TokenType == JsonTokenType.StartObject && IsListed(ref reader, evaluator, out nameLength);
                if (keep && verifier is not null)
                {
                    keep = MatchesPin(result.Slice(start, reader.BytesConsumed - start), nameLength, evaluator, verifier);
                }

                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    reader.Skip();
                }

                Add(ref count, start, reader.BytesConsumed, keep);
                if (!keep)
                {
                    removed++;
                }
            }

            arrayClose = reader.TokenStartIndex;
        }

        if (removed == 0)
        {
            return false;
        }

        // [message start .. '[' inclusive] kept elements joined by ',' [']' .. message end]
        SequenceWriter.Write(output, message.Slice(0, resultStart + arrayOpen + 1));
        bool first = true;
        for (int i = 0; i < count; i++)
        {
            if (!_keep[i])
            {
                continue;
            }

            if (!first)
            {
                output.GetSpan(1)[0] = (byte)',';
                output.Advance(1);
            }

            first = false;
            SequenceWriter.Write(output, result.Slice(_starts[i], _ends[i] - _starts[i]));
        }

        SequenceWriter.WriteLine(output, message.Slice(resultStart + arrayClose));
        return true;
    }

    /// <summary>Reads one tool object (reader on its StartObject, left on its EndObject) and asks the policy.</summary>
    private bool IsListed(ref Utf8JsonReader reader, IPolicyEvaluator evaluator, out int nameLength)
    {
        int nameCount = 0;
        nameLength = 0;
        bool nameIsString = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            bool isName = ValueEquals(ref reader, "name"u8);
            reader.Read();
            if (isName)
            {
                nameCount++;
                nameIsString = reader.TokenType == JsonTokenType.String;
                if (nameIsString)
                {
                    nameLength = Unescape(ref reader);
                }
            }

            reader.Skip();
        }

        if (nameCount != 1 || !nameIsString)
        {
            return false;
        }

        try
        {
            return evaluator.IsListed(_scratch.AsSpan(0, nameLength));
        }
        catch (Exception)
        {
            return false; // fail closed: a tool the policy cannot judge is not shown
        }
    }

    /// <summary>
    /// Whether a listed tool (its object's bytes; its name in the scratch buffer) is its pinned
    /// definition, or is not pinned. Runs only for policies that pin tools, and off the call path.
    /// </summary>
    private bool MatchesPin(ReadOnlySequence<byte> tool, int nameLength, IPolicyEvaluator evaluator, PinVerifier verifier)
    {
        IReadOnlyDictionary<string, string> pins = evaluator.Policy.Pins;
        if (pins.Count == 0)
        {
            return true;
        }

        string name = System.Text.Encoding.UTF8.GetString(_scratch, 0, nameLength);
        if (verifier.PinOf(pins, name) is null)
        {
            return true;
        }

        string? listed = null;
        try
        {
            using JsonDocument definition = JsonDocument.Parse(tool, new JsonDocumentOptions { MaxDepth = 128 });
            if (ToolDefinitionPin.TryCompute(definition.RootElement, out _, out string pin))
            {
                listed = pin;
            }
        }
        catch (JsonException)
        {
            // Unreadable: counts as a changed definition (fail closed).
        }

        return verifier.Verify(pins, name, listed);
    }

    private void Add(ref int count, long start, long end, bool keep)
    {
        if (count == _starts.Length)
        {
            Array.Resize(ref _starts, count * 2);
            Array.Resize(ref _ends, count * 2);
            Array.Resize(ref _keep, count * 2);
        }

        _starts[count] = start;
        _ends[count] = end;
        _keep[count] = keep;
        count++;
    }

    private int Unescape(ref Utf8JsonReader reader)
    {
        long length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        if (_scratch.Length < length)
        {
            _scratch = new byte[Math.Max(_scratch.Length * 2, (int)length)];
        }

        return reader.CopyString(_scratch);
    }

    private static bool ValueEquals(ref Utf8JsonReader reader, ReadOnlySpan<byte> text) => reader.ValueTextEquals(text);
}
