using System.Text;
using System.Text.RegularExpressions;
using CsCheck;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Tests.Runtime;

public class GlobPatternTests
{
    [Theory]
    [InlineData("*", "", true)]
    [InlineData("*", "anything/at/all", true)]
    [InlineData("Delete*", "DeleteCluster", true)]
    [InlineData("Delete*", "Delete", true)]
    [InlineData("Delete*", "deleteCluster", false)]
    [InlineData("*Secret*", "GetSecretValue", true)]
    [InlineData("/data/*", "/data/a/b/c", true)]
    [InlineData("/data/*.txt", "/data/a.txt.md", false)]
    [InlineData("a?c", "abc", true)]
    [InlineData("a?c", "ac", false)]
    [InlineData("a?c", "aéc", true)]
    [InlineData("a?c", "a😀c", true)]
    [InlineData("a??c", "a😀c", false)]
    [InlineData("*a*b", "xaxbxb", true)]
    [InlineData("*a*b", "xaxbxc", false)]
    [InlineData("exact", "exact", true)]
    [InlineData("exact", "exactly", false)]
    public void Matches_text_and_utf8_alike(string pattern, string text, bool expected)
    {
        var glob = new GlobPattern(pattern);
        Assert.Equal(expected, glob.IsMatch(text.AsSpan()));
        Assert.Equal(expected, glob.IsMatch(Encoding.UTF8.GetBytes(text)));
    }

    private static Regex Reference(string glob)
    {
        var sb = new StringBuilder("^");
        foreach (char c in glob)
        {
            sb.Append(c switch
            {
                '*' => "(?s:.*)",
                '?' => @"(?:[\uD800-\uDBFF][\uDC00-\uDFFF]|[^\uD800-\uDFFF])",
                _ => Regex.Escape(c.ToString()),
            });
        }
        return new Regex(sb.Append(@"\z").ToString(), RegexOptions.CultureInvariant);
    }

    [Fact]
    public void Agrees_with_a_reference_regex()
    {
        // A small alphabet makes matches frequent; the emoji exercises '?' over a surrogate pair.
        var chars = Gen.OneOfConst("a", "b", "/", "é", "😀", "\n");
        var text = chars.Array[0, 8].Select(parts => string.Concat(parts));
        var pattern = Gen.OneOfConst("a", "b", "/", "é", "😀", "*", "?").Array[0, 6].Select(parts => string.Concat(parts));
        Gen.Select(pattern, text).Sample((p, t) =>
        {
            bool expected = Reference(p).IsMatch(t);
            var glob = new GlobPattern(p);
            return glob.IsMatch(t.AsSpan()) == expected && glob.IsMatch(Encoding.UTF8.GetBytes(t)) == expected;
        }, iter: 5000);
    }
}
