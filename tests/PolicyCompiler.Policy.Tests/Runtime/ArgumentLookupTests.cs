using System.Text;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Tests.Runtime;

public class ArgumentLookupTests
{
    internal static ArgumentPath Path(params object[] steps)
    {
        var converted = new PathStep[steps.Length];
        for (int i = 0; i < steps.Length; i++)
        {
            converted[i] = steps[i] is int index ? new PathStep(null, index) : new PathStep(Encoding.UTF8.GetBytes((string)steps[i]), -1);
        }
        return new ArgumentPath("args." + string.Join(".", steps), converted);
    }

    private static (PolicyValueKind Kind, string Raw, bool Escaped) Find(string json, params object[] steps)
    {
        var value = ArgumentLookup.Find(Encoding.UTF8.GetBytes(json), Path(steps));
        return (value.Kind, Encoding.UTF8.GetString(value.Raw), value.HasEscapes);
    }

    [Theory]
    [InlineData("""{"a":"x"}""", "a", PolicyValueKind.String, "x")]
    [InlineData("""{"a":12.5e1}""", "a", PolicyValueKind.Number, "12.5e1")]
    [InlineData("""{"a":true}""", "a", PolicyValueKind.True, "true")]
    [InlineData("""{"a":false}""", "a", PolicyValueKind.False, "false")]
    [InlineData("""{"a":null}""", "a", PolicyValueKind.Null, "null")]
    [InlineData("""{"a": {"b" : 1} }""", "a", PolicyValueKind.Object, """{"b" : 1}""")]
    [InlineData("""{"a": [1, [2]] ,"z":0}""", "a", PolicyValueKind.Array, "[1, [2]]")]
    [InlineData("""{"b":1}""", "a", PolicyValueKind.Missing, "")]
    public void Finds_each_kind_of_value(string json, string name, PolicyValueKind kind, string raw)
    {
        var found = Find(json, name);
        Assert.Equal(kind, found.Kind);
        Assert.Equal(raw, found.Raw);
    }

    [Fact]
    public void Walks_nested_objects_and_array_indexes()
    {
        const string json = """{"repo":{"owner":"me","items":[{"n":"first"},{"n":"second"}]},"other":[1,2]}""";
        Assert.Equal((PolicyValueKind.String, "me", false), Find(json, "repo", "owner"));
        Assert.Equal((PolicyValueKind.String, "second", false), Find(json, "repo", "items", 1, "n"));
        Assert.Equal(PolicyValueKind.Missing, Find(json, "repo", "items", 2, "n").Kind);
        Assert.Equal(PolicyValueKind.Missing, Find(json, "repo", "owner", "deeper").Kind);
        Assert.Equal(PolicyValueKind.Missing, Find(json, "repo", 0).Kind);
        Assert.Equal((PolicyValueKind.Number, "2", false), Find(json, "other", 1));
    }

    [Fact]
    public void The_empty_path_is_the_arguments_object_itself()
    {
        Assert.Equal((PolicyValueKind.Object, """{"a":1}""", false), Find("""{"a":1}"""));
    }

    [Fact]
    public void No_arguments_means_everything_is_missing()
    {
        Assert.Equal(PolicyValueKind.Missing, ArgumentLookup.Find(default, Path()).Kind);
        Assert.Equal(PolicyValueKind.Missing, ArgumentLookup.Find(default, Path("a")).Kind);
    }

    [Fact]
    public void Escaped_string_keeps_its_raw_text_and_flags_it()
    {
        Assert.Equal((PolicyValueKind.String, @"a\nb", true), Find("""{"a":"a\nb"}""", "a"));
    }

    [Theory]
    [InlineData("""{"a":1,"a":2}""")]
    [InlineData("""{"a":1,"\u0061":2}""")]
    [InlineData("""{"\u0061":{"b":1},"a":{"b":1}}""")]
    public void A_duplicated_name_on_the_path_is_ambiguous(string json)
    {
        Assert.Equal(PolicyValueKind.Ambiguous, Find(json, "a").Kind);
    }

    [Fact]
    public void Duplicates_deeper_on_the_path_are_ambiguous_but_elsewhere_they_do_not_matter()
    {
        const string json = """{"a":{"b":1,"b":2,"c":3},"d":1,"d":1}""";
        Assert.Equal(PolicyValueKind.Ambiguous, Find(json, "a", "b").Kind);
        Assert.Equal((PolicyValueKind.Number, "3", false), Find(json, "a", "c"));
    }

    [Fact]
    public void Escaped_property_names_match_their_decoded_text()
    {
        Assert.Equal((PolicyValueKind.Number, "7", false), Find("""{"\u0070ath":7}""", "path"));
        Assert.Equal((PolicyValueKind.Number, "7", false), Find("""{"a.b":7}""", "a.b"));
    }

    [Theory]
    [InlineData("""{"a":1""")]
    [InlineData("""{"a":1} x""")]
    [InlineData("""{"a":1,"b":}""")]
    [InlineData("""{"a":1,"b":[1,}""")]
    [InlineData("""{"a":1} {"a":2}""")]
    [InlineData("{\"a\":1, // comment\n \"b\":2}")]
    public void Invalid_json_is_ambiguous_for_every_path(string json)
    {
        Assert.Equal(PolicyValueKind.Ambiguous, Find(json, "a").Kind);
        Assert.Equal(PolicyValueKind.Ambiguous, Find(json).Kind);
    }

    [Theory]
    [InlineData("""{"\ud800":1,"a":2}""")]
    [InlineData("""{"a":2,"x\udc00y":1}""")]
    [InlineData("""{"a\ud800":1,"a":2}""")]
    public void An_undecodable_name_in_the_searched_object_is_ambiguous(string json)
    {
        // Servers read a lone surrogate in different ways (replace it, reject the message, keep it):
        // the policy cannot know which name the server sees. The lookup used to throw here.
        Assert.Equal(PolicyValueKind.Ambiguous, Find(json, "a").Kind);
        Assert.Equal(PolicyValueKind.Object, Find(json).Kind); // the object itself is still a value
    }

    [Fact]
    public void An_undecodable_name_elsewhere_does_not_matter()
    {
        Assert.Equal((PolicyValueKind.Number, "1", false), Find("""{"o":{"\ud800":0},"a":1}""", "a"));
        Assert.Equal(PolicyValueKind.Ambiguous, Find("""{"o":{"\ud800":0},"a":1}""", "o", "k").Kind);
        Assert.Equal((PolicyValueKind.String, @"\ud800", true), Find("""{"a":"\ud800"}""", "a")); // a value, not a name: the operators decide
    }

    [Fact]
    public void Arguments_that_are_not_an_object_have_no_properties()
    {
        Assert.Equal(PolicyValueKind.Missing, Find("[1,2]", "a").Kind);
        Assert.Equal((PolicyValueKind.Number, "2", false), Find("[1,2]", 1));
    }

    [Fact]
    public void Looking_up_allocates_nothing()
    {
        byte[] json = Encoding.UTF8.GetBytes("""{"x":[1,2,{"k":"v"}],"repo":{"owner":"o\u0041","name":"n"},"n":5}""");
        var path = Path("repo", "owner");
        ArgumentLookup.Find(json, path);
        int found = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++) found += ArgumentLookup.Find(json, path).Kind == PolicyValueKind.String ? 1 : 0;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(100, found);
        Assert.Equal(0, allocated);
    }
}
