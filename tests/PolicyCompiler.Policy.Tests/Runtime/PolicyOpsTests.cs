using System.Text;
using System.Text.RegularExpressions;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using static PolicyCompiler.Policy.Runtime.Truth;

namespace PolicyCompiler.Policy.Tests.Runtime;

public class PolicyOpsTests
{
    private const string Missing = "<missing>";
    private const string Ambiguous = "<ambiguous>";
    private static readonly ArgumentPath V = ArgumentLookupTests.Path("v");

    /// <summary>Runs <paramref name="test"/> on the value written as JSON (or the two special markers).</summary>
    internal static Truth On(string valueJson, Func<PolicyValue, Truth> test)
    {
        string json = valueJson switch
        {
            Missing => "{}",
            Ambiguous => """{"v":1,"v":1}""",
            _ => "{\"v\":" + valueJson + "}",
        };
        byte[] bytes = Encoding.UTF8.GetBytes(json);
        return test(ArgumentLookup.Find(bytes, V));
    }

    private static byte[] U(string s) => Encoding.UTF8.GetBytes(s);

    [Theory]
    [InlineData("1", true, True)]
    [InlineData("null", true, True)]
    [InlineData("{}", false, False)]
    [InlineData(Missing, true, False)]
    [InlineData(Missing, false, True)]
    [InlineData(Ambiguous, true, Unknown)]
    [InlineData(Ambiguous, false, Unknown)]
    public void Exists(string value, bool expected, Truth result) =>
        Assert.Equal(result, On(value, v => PolicyOps.Exists(v, expected)));

    [Theory]
    [InlineData("\"main\"", "main", True)]
    [InlineData("\"ma\\u0069n\"", "main", True)]
    [InlineData("\"main \"", "main", False)]
    [InlineData("\"Main\"", "main", False)]
    [InlineData("\"caf\\u00e9\"", "café", True)]
    [InlineData("\"\\ud83d\\ude00\"", "😀", True)]
    [InlineData("\"\\ud83d\"", "x", Unknown)]
    [InlineData("1", "1", False)]
    [InlineData("[\"main\"]", "main", False)]
    [InlineData("null", "null", False)]
    [InlineData(Missing, "main", False)]
    [InlineData(Ambiguous, "main", Unknown)]
    public void Eq_string(string value, string operand, Truth result)
    {
        Assert.Equal(result, On(value, v => PolicyOps.Eq(v, U(operand))));
        Truth negated = value == Missing ? False : PolicyOps.Not(result);
        Assert.Equal(negated, On(value, v => PolicyOps.Neq(v, U(operand))));
    }

    [Theory]
    [InlineData("1000", 1000, True)]
    [InlineData("1e3", 1000, True)]
    [InlineData("1000.0", 1000, True)]
    [InlineData("-0", 0, True)]
    [InlineData("1000.5", 1000, False)]
    [InlineData("\"1000\"", 1000, False)]
    [InlineData("true", 1, False)]
    [InlineData(Missing, 1, False)]
    [InlineData(Ambiguous, 1, Unknown)]
    public void Eq_number(string value, double operand, Truth result)
    {
        Assert.Equal(result, On(value, v => PolicyOps.Eq(v, operand)));
        Truth negated = value == Missing ? False : PolicyOps.Not(result);
        Assert.Equal(negated, On(value, v => PolicyOps.Neq(v, operand)));
    }

    [Theory]
    [InlineData("true", true, True)]
    [InlineData("false", false, True)]
    [InlineData("false", true, False)]
    [InlineData("\"true\"", true, False)]
    [InlineData("1", true, False)]
    [InlineData(Missing, true, False)]
    [InlineData(Ambiguous, false, Unknown)]
    public void Eq_boolean(string value, bool operand, Truth result)
    {
        Assert.Equal(result, On(value, v => PolicyOps.Eq(v, operand)));
        Truth negated = value == Missing ? False : PolicyOps.Not(result);
        Assert.Equal(negated, On(value, v => PolicyOps.Neq(v, operand)));
    }

    [Theory]
    [InlineData("null", True)]
    [InlineData("\"null\"", False)]
    [InlineData("0", False)]
    [InlineData(Missing, False)]
    [InlineData(Ambiguous, Unknown)]
    public void Eq_null(string value, Truth result)
    {
        Assert.Equal(result, On(value, v => PolicyOps.EqNull(v)));
        Truth negated = value == Missing ? False : PolicyOps.Not(result);
        Assert.Equal(negated, On(value, v => PolicyOps.NeqNull(v)));
    }

    [Theory]
    [InlineData("4", True, True, False, False)]
    [InlineData("5", False, True, False, True)]
    [InlineData("6", False, False, True, True)]
    [InlineData("5e0", False, True, False, True)]
    [InlineData("-1e400", True, True, False, False)]
    [InlineData("\"4\"", Unknown, Unknown, Unknown, Unknown)]
    [InlineData("null", Unknown, Unknown, Unknown, Unknown)]
    [InlineData("[4]", Unknown, Unknown, Unknown, Unknown)]
    [InlineData(Missing, False, False, False, False)]
    [InlineData(Ambiguous, Unknown, Unknown, Unknown, Unknown)]
    public void Ordering_against_five(string value, Truth lt, Truth lte, Truth gt, Truth gte)
    {
        Assert.Equal(lt, On(value, v => PolicyOps.Lt(v, 5)));
        Assert.Equal(lte, On(value, v => PolicyOps.Lte(v, 5)));
        Assert.Equal(gt, On(value, v => PolicyOps.Gt(v, 5)));
        Assert.Equal(gte, On(value, v => PolicyOps.Gte(v, 5)));
    }

    [Theory]
    [InlineData("\"/data/x.txt\"", True, False)]
    [InlineData("\"\\/data\\/x.txt\"", True, False)]
    [InlineData("\"/data\"", False, False)]
    [InlineData("\"x/data/\"", False, True)]
    [InlineData("\"/data/\"", True, True)]
    [InlineData("7", Unknown, Unknown)]
    [InlineData("[\"/data/\"]", Unknown, Unknown)]
    [InlineData("\"\\udc00/data/\"", Unknown, Unknown)]
    [InlineData(Missing, False, False)]
    [InlineData(Ambiguous, Unknown, Unknown)]
    public void Prefix_and_suffix(string value, Truth prefix, Truth suffix)
    {
        Assert.Equal(prefix, On(value, v => PolicyOps.Prefix(v, U("/data/"))));
        Assert.Equal(suffix, On(value, v => PolicyOps.Suffix(v, U("/data/"))));
    }

    [Theory]
    [InlineData("\"my secret value\"", True)]
    [InlineData("\"my se\\u0063ret value\"", True)]
    [InlineData("\"my Secret\"", False)]
    [InlineData("[\"a\",\"secret\"]", True)]
    [InlineData("[\"a\",\"my secret\"]", False)]
    [InlineData("[\"a\",\"\\u0073ecret\"]", True)]
    [InlineData("[]", False)]
    [InlineData("[\"\\ud800\"]", Unknown)]
    [InlineData("[\"\\ud800\", \"secret\"]", True)]
    [InlineData("{\"secret\":1}", Unknown)]
    [InlineData("3", Unknown)]
    [InlineData(Missing, False)]
    [InlineData(Ambiguous, Unknown)]
    public void Contains_string(string value, Truth result) =>
        Assert.Equal(result, On(value, v => PolicyOps.Contains(v, U("secret"))));

    [Theory]
    [InlineData("[1, 2, 3]", True)]
    [InlineData("[1, 2.0e0]", True)]
    [InlineData("[\"2\"]", False)]
    [InlineData("[[2], {\"a\":2}]", False)]
    [InlineData("\"2\"", Unknown)]
    [InlineData(Missing, False)]
    [InlineData(Ambiguous, Unknown)]
    public void Contains_number(string value, Truth result) =>
        Assert.Equal(result, On(value, v => PolicyOps.Contains(v, 2.0)));

    [Theory]
    [InlineData("[false, true]", true, True)]
    [InlineData("[false]", true, False)]
    [InlineData("[null]", true, False)]
    [InlineData("true", true, Unknown)]
    public void Contains_boolean(string value, bool operand, Truth result) =>
        Assert.Equal(result, On(value, v => PolicyOps.Contains(v, operand)));

    [Theory]
    [InlineData("[1, null]", True)]
    [InlineData("[1, \"null\"]", False)]
    [InlineData("null", Unknown)]
    [InlineData(Missing, False)]
    public void Contains_null(string value, Truth result) =>
        Assert.Equal(result, On(value, v => PolicyOps.ContainsNull(v)));

    [Theory]
    [InlineData("\"/data/a/b.txt\"", True)]
    [InlineData("\"/data/\\u0061.txt\"", True)]
    [InlineData("\"/data/a/b.md\"", False)]
    [InlineData("\"/etc/a.txt\"", False)]
    [InlineData("1", Unknown)]
    [InlineData(Missing, False)]
    [InlineData(Ambiguous, Unknown)]
    public void Glob(string value, Truth result) =>
        Assert.Equal(result, On(value, v => PolicyOps.Glob(v, new GlobPattern("/data/*.txt"))));

    [Theory]
    [InlineData("\"release-1.2\"", True)]
    [InlineData("\"release-\\u0031.2\"", True)]
    [InlineData("\"main\"", False)]
    [InlineData("12", Unknown)]
    [InlineData("\"\\udfff\"", Unknown)]
    [InlineData(Missing, False)]
    [InlineData(Ambiguous, Unknown)]
    public void Regex(string value, Truth result)
    {
        var regex = PolicyOps.CreateRegex(@"^release-\d+\.\d+$", TimeSpan.FromSeconds(5));
        Assert.Equal(result, On(value, v => PolicyOps.Regex(v, regex)));
    }

    [Fact]
    public void Regex_is_linear_time_and_culture_invariant()
    {
        var regex = PolicyOps.CreateRegex("(a+)+$", TimeSpan.FromSeconds(5));
        Assert.True((regex.Options & RegexOptions.NonBacktracking) != 0);
        Assert.True((regex.Options & RegexOptions.CultureInvariant) != 0);
        Assert.Equal(TimeSpan.FromSeconds(5), regex.MatchTimeout);
        // The classic catastrophic-backtracking input: linear with NonBacktracking.
        Assert.Equal(False, On("\"" + new string('a', 5000) + "!\"", v => PolicyOps.Regex(v, regex)));
    }

    [Fact]
    public void Long_escaped_strings_decode_through_pooled_buffers()
    {
        string text = new string('x', 5000) + "end";
        string json = "\"" + new string('x', 5000) + "\\u0065nd\"";
        Assert.Equal(True, On(json, v => PolicyOps.Eq(v, U(text))));
        Assert.Equal(True, On(json, v => PolicyOps.Suffix(v, U("xend"))));
        Assert.Equal(True, On(json, v => PolicyOps.Regex(v, PolicyOps.CreateRegex("^x+end$", TimeSpan.FromSeconds(5)))));
    }

    [Fact]
    public void Grant_and_session_strings_compare_by_text()
    {
        var grant = PolicyValue.FromString("team-é");
        Assert.Equal(True, PolicyOps.Eq(grant, U("team-é")));
        Assert.Equal(True, PolicyOps.Prefix(grant, U("team-")));
        Assert.Equal(True, PolicyOps.Glob(grant, new GlobPattern("team-?")));
        Assert.Equal(True, PolicyOps.Regex(grant, PolicyOps.CreateRegex("^team-.$", TimeSpan.FromSeconds(1))));
        Assert.Equal(False, PolicyOps.Lt(PolicyValue.FromString("x"), 1) == Unknown ? False : True);
        var tool = PolicyValue.FromUtf8String(U("DeleteCluster"));
        Assert.Equal(True, PolicyOps.Prefix(tool, U("Delete")));
        Assert.Equal(False, PolicyOps.Eq(tool, U("Delete")));
    }

    [Theory]
    [InlineData(True, ToolAction.Allow, true)]
    [InlineData(Unknown, ToolAction.Allow, false)]
    [InlineData(False, ToolAction.Allow, false)]
    [InlineData(True, ToolAction.Deny, true)]
    [InlineData(Unknown, ToolAction.Deny, true)]
    [InlineData(False, ToolAction.Deny, false)]
    [InlineData(True, ToolAction.Approve, true)]
    [InlineData(Unknown, ToolAction.Approve, true)]
    [InlineData(False, ToolAction.Approve, false)]
    public void Fires_fail_closed(Truth condition, ToolAction action, bool fires) =>
        Assert.Equal(fires, PolicyOps.Fires(condition, action));

    [Fact]
    public void Kleene_truth_tables()
    {
        Truth[] all = [False, True, Unknown];
        foreach (var a in all)
        {
            foreach (var b in all)
            {
                Truth and = a == False || b == False ? False : a == True && b == True ? True : Unknown;
                Truth or = a == True || b == True ? True : a == False && b == False ? False : Unknown;
                Assert.Equal(and, PolicyOps.And(a, b));
                Assert.Equal(or, PolicyOps.Or(a, b));
            }
        }
        Assert.Equal(Unknown, PolicyOps.Not(Unknown));
        Assert.Equal(True, PolicyOps.Not(False));
        Assert.Equal(False, PolicyOps.Not(True));
    }

    [Fact]
    public void Operators_allocate_nothing()
    {
        byte[] json = U("""{"v":"caf\u00e9 au lait","n":42,"a":["x","y",3]}""");
        var regex = PolicyOps.CreateRegex("au", TimeSpan.FromSeconds(1));
        var glob = new GlobPattern("caf? *");
        byte[] needle = U("lait");
        var vPath = ArgumentLookupTests.Path("v");
        var nPath = ArgumentLookupTests.Path("n");
        var aPath = ArgumentLookupTests.Path("a");
        // Assertions stay outside the measured loop: xunit's comparers allocate.
        int Run()
        {
            var v = ArgumentLookup.Find(json, vPath);
            var n = ArgumentLookup.Find(json, nPath);
            var a = ArgumentLookup.Find(json, aPath);
            int trues = 0;
            trues += PolicyOps.Regex(v, regex) == True ? 1 : 0;
            trues += PolicyOps.Glob(v, glob) == True ? 1 : 0;
            trues += PolicyOps.Suffix(v, needle) == True ? 1 : 0;
            trues += PolicyOps.Gt(n, 41) == True ? 1 : 0;
            trues += PolicyOps.Contains(a, 3) == True ? 1 : 0;
            return trues;
        }
        Assert.Equal(5, Run());
        int total = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50; i++) total += Run();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(250, total);
        Assert.Equal(0, allocated);
    }
}
