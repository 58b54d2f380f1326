using System.Text;
using CsCheck;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Tests.Runtime;

/// <summary>
/// The one-pass reader of the compiled evaluators must give, for every path, exactly what the
/// reference lookup (<see cref="ArgumentLookup.Find"/>, one scan per path) gives — including every
/// fail-closed case: duplicated and escaped names, undecodable names, invalid JSON, trailing content.
/// </summary>
public class ArgumentReaderTests
{
    private static readonly object[] Steps = ["a", "b", "x.y", "é", 0, 1];

    // Names as they appear in the JSON: plain, escaped spellings of the same names, an undecodable one.
    private static readonly string[] JsonNames = ["a", "b", "x.y", "\\u0061", "\\u00e9", "é", "c", "\\ud800", "b\\udc00"];

    private static readonly string[] Scalars = ["1", "-2.5e3", "true", "false", "null", "\"s\"", "\"\\u0041\\n\"", "\"\\ud800\"", "\"é\""];

    private static Gen<string> GenJson(int depth)
    {
        var scalar = Gen.OneOfConst(Scalars);
        if (depth == 0) return scalar;
        var inner = GenJson(depth - 1);
        var array = inner.Array[0, 3].Select(items => "[" + string.Join(", ", items) + "]");
        // Names may repeat (duplicates, also through escapes) and may not decode.
        var obj = Gen.Select(Gen.Frequency((6, Gen.OneOfConst("a", "b", "x.y", "\\u0061", "c", "é", "\\u00e9")), (1, Gen.OneOfConst(JsonNames))).Array[0, 4], inner.Array[4])
            .Select((names, values) => "{" + string.Join(",", names.Select((n, i) => $"\"{n}\" : {values[i]}")) + "}");
        return Gen.Frequency((1, scalar), (2, array), (4, obj));
    }

    // Mostly valid documents; some broken in the ways an agent could send them.
    private static readonly Gen<string> GenArguments =
        Gen.Select(GenJson(3), Gen.Int[0, 9], Gen.Int[0, 1000]).Select((json, damage, at) => damage switch
        {
            0 => json[..(at % (json.Length + 1))],     // truncated (or empty: no arguments)
            1 => json + " {}",                          // a second value
            2 => json + " x",                           // trailing garbage
            3 => "  " + json + "\n",                    // whitespace around is fine
            4 => json.Replace(",", ", // c\n"),         // comments are not JSON
            _ => json,
        });

    private static readonly Gen<object[][]> GenPaths =
        Gen.OneOfConst(Steps).Array[0, 3].Array[1, 6];

    private static ArgumentPath ToPath(object[] steps) => ArgumentLookupTests.Path(steps);

    [Fact]
    public void Reads_every_path_as_the_reference_lookup_does()
    {
        Gen.Select(GenArguments, GenPaths).Sample((json, steps) =>
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(json);
            ArgumentPath[] paths = steps.Select(ToPath).ToArray();
            var reader = new ArgumentReader(paths);
            var slots = new ArgumentSlot[paths.Length];
            reader.Read(utf8, slots);
            for (int i = 0; i < paths.Length; i++)
            {
                PolicyValue expected = ArgumentLookup.Find(utf8, paths[i]);
                PolicyValue actual = slots[i].ToValue(utf8);
                if (expected.Kind != actual.Kind || !expected.Raw.SequenceEqual(actual.Raw) || expected.HasEscapes != actual.HasEscapes)
                {
                    throw new Xunit.Sdk.XunitException(
                        $"path {paths[i].Text} of {json}: lookup {expected.Kind} '{Encoding.UTF8.GetString(expected.Raw)}' {expected.HasEscapes}, "
                        + $"reader {actual.Kind} '{Encoding.UTF8.GetString(actual.Raw)}' {actual.HasEscapes}");
                }
            }
        }, iter: 20_000);
    }

    // Bytes a mutation may insert or put in place of another: JSON punctuation, the starts of
    // literals and numbers, escapes, control bytes, non-ASCII and invalid UTF-8, comment starts.
    private static readonly byte[] Alphabet =
        [.. "{}[]\",:\\ \t\n\r0019-+.eEtrufalsnx/*u"u8, 0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xA9, 0xED, 0xA0, 0xFF, 0xEF, 0xBB, 0xBF];

    private static readonly string[] NumberEdges =
        ["0", "-0", "01", "-", "1.", ".5", "1.5e", "1e+", "1E-7", "-01.0", "1e400", "0.0e0", "+1", "00", "1x", "2.", "-a"];

    // Valid documents, number edge cases, deep nesting, and all of them damaged by up to three byte mutations.
    private static readonly Gen<byte[]> GenBytes =
        Gen.Select(
            Gen.Frequency(
                (8, GenJson(3)),
                (2, Gen.OneOfConst(NumberEdges).Select(n => "{\"a\":" + n + ",\"b\":[" + n + "]}")),
                (1, Gen.Int[125, 131].Select(d => new string('[', d) + new string(']', d))),
                (1, Gen.Int[125, 131].Select(d => string.Concat(Enumerable.Repeat("{\"a\":", d)) + "1" + new string('}', d))),
                (1, GenJson(2).Select(j => "\uFEFF" + j))),
            Gen.Int[0, 3], Gen.Int.Array[3], Gen.Int[0, Alphabet.Length - 1].Array[3], Gen.Int[0, 2].Array[3],
            (json, mutations, positions, bytes, kinds) =>
            {
                var list = new List<byte>(Encoding.UTF8.GetBytes(json));
                for (int m = 0; m < mutations; m++)
                {
                    int at = (int)((uint)positions[m] % (uint)(list.Count + 1));
                    switch (kinds[m])
                    {
                        case 0: list.Insert(at, Alphabet[bytes[m]]); break;
                        case 1 when at < list.Count: list[at] = Alphabet[bytes[m]]; break;
                        case 2 when at < list.Count: list.RemoveAt(at); break;
                    }
                }

                return list.ToArray();
            });

    [Fact]
    public void The_scanner_reads_every_document_as_Utf8JsonReader_does()
    {
        // Acceptance (what is invalid JSON, what is too deep) and every position must match the
        // Utf8JsonReader walk, on valid and damaged bytes alike.
        int valid = 0;
        Gen.Select(GenBytes, GenPaths).Sample((json, steps) =>
        {
            ArgumentPath[] paths = [.. steps.Select(ToPath), ToPath([])];
            var reader = new ArgumentReader(paths);
            var scanned = new ArgumentSlot[paths.Length];
            var expected = new ArgumentSlot[paths.Length];
            reader.Read(json, scanned);
            reader.ReadWithJsonReader(json, expected);
            if (expected[^1].Kind != PolicyValueKind.Ambiguous) Interlocked.Increment(ref valid);
            for (int i = 0; i < paths.Length; i++)
            {
                PolicyValue want = expected[i].ToValue(json);
                PolicyValue got = scanned[i].ToValue(json);
                if (want.Kind != got.Kind || !want.Raw.SequenceEqual(got.Raw) || want.HasEscapes != got.HasEscapes)
                {
                    throw new Xunit.Sdk.XunitException(
                        $"path {paths[i].Text} of [{Convert.ToHexString(json)}] {Encoding.UTF8.GetString(json)}: Utf8JsonReader {want.Kind} '{Encoding.UTF8.GetString(want.Raw)}' {want.HasEscapes}, "
                        + $"scanner {got.Kind} '{Encoding.UTF8.GetString(got.Raw)}' {got.HasEscapes}");
                }
            }
        }, iter: 100_000);

        // The property is only as strong as its mix: both accepted and refused documents must be common.
        Assert.InRange(valid, 20_000, 80_000);
    }

    [Theory]
    [InlineData(128, true)]
    [InlineData(129, false)]
    public void Nesting_up_to_the_reference_depth_is_read_deeper_is_ambiguous(int depth, bool readable)
    {
        byte[] json = Encoding.UTF8.GetBytes("{\"a\":" + new string('[', depth - 1) + new string(']', depth - 1) + "}");
        var reader = new ArgumentReader(ToPath(["a"]));
        var slots = new ArgumentSlot[1];
        reader.Read(json, slots);
        Assert.Equal(readable ? PolicyValueKind.Array : PolicyValueKind.Ambiguous, slots[0].Kind);
        Assert.Equal(ArgumentLookup.Find(json, ToPath(["a"])).Kind, slots[0].Kind);
    }

    [Fact]
    public void A_duplicate_found_after_the_first_copy_was_read_makes_the_paths_below_it_ambiguous()
    {
        byte[] json = Encoding.UTF8.GetBytes("""{"o":{"k":1,"j":[5]},"n":2,"\u006f":{"k":1}}""");
        var reader = new ArgumentReader(ToPath(["o", "k"]), ToPath(["n"]), ToPath(["o"]), ToPath(["o", "j", 0]));
        var slots = new ArgumentSlot[4];
        reader.Read(json, slots);
        Assert.Equal(PolicyValueKind.Ambiguous, slots[0].Kind);
        Assert.Equal(PolicyValueKind.Number, slots[1].Kind);
        Assert.Equal(PolicyValueKind.Ambiguous, slots[2].Kind);
        Assert.Equal(PolicyValueKind.Ambiguous, slots[3].Kind);
    }

    [Fact]
    public void The_same_path_twice_fills_both_slots()
    {
        byte[] json = Encoding.UTF8.GetBytes("""{"a":"v"}""");
        var reader = new ArgumentReader(ToPath(["a"]), ToPath(["a"]), ToPath([]));
        var slots = new ArgumentSlot[3];
        reader.Read(json, slots);
        Assert.Equal("v", Encoding.UTF8.GetString(slots[0].ToValue(json).Raw));
        Assert.Equal("v", Encoding.UTF8.GetString(slots[1].ToValue(json).Raw));
        Assert.Equal("""{"a":"v"}""", Encoding.UTF8.GetString(slots[2].ToValue(json).Raw));
    }

    [Fact]
    public void No_arguments_leave_every_slot_missing_even_a_reused_one()
    {
        var reader = new ArgumentReader(ToPath(["a"]), ToPath([]));
        var slots = new ArgumentSlot[] { ArgumentSlot.Ambiguous, ArgumentSlot.Ambiguous };
        reader.Read(default, slots);
        Assert.All(slots, slot => Assert.Equal(PolicyValueKind.Missing, slot.Kind));
    }

    [Fact]
    public void Reading_allocates_nothing()
    {
        byte[] json = Encoding.UTF8.GetBytes("""{"x":[1,2,{"k":"v"}],"repo":{"owner":"o\u0041","name":"n"},"n":5,"\u006e2":1}""");
        var reader = new ArgumentReader(ToPath(["repo", "owner"]), ToPath(["n"]), ToPath(["x", 2, "k"]), ToPath(["n2"]));
        Span<ArgumentSlot> slots = stackalloc ArgumentSlot[4];
        reader.Read(json, slots);
        int found = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            reader.Read(json, slots);
            found += slots[2].Kind == PolicyValueKind.String && slots[3].Kind == PolicyValueKind.Number ? 1 : 0;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(100, found);
        Assert.Equal(0, allocated);
    }
}
