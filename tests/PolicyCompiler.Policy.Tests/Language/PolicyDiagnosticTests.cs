using System.Text;
using PolicyCompiler.Policy.Language;
using static PolicyCompiler.Policy.Tests.Language.PolicyTestHelpers;

namespace PolicyCompiler.Policy.Tests.Language;

/// <summary>One test per diagnostic id: the exact id, line and column (single quotes stand for double quotes).</summary>
public class PolicyDiagnosticTests
{
    [Fact]
    public void Diagnostic_PC0001_InvalidJson_TrailingComma()
    {
        var d = Single(Parse("""
            { 'version': '1',
              'tools': { 'a': {}, } }
            """), "PC0001", 2, 23);
        Assert.StartsWith("invalid JSON:", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0001_InvalidJson_Comment()
    {
        Single(Parse("""
            { 'version': '1', // no comments
              'tools': {} }
            """), "PC0001", 1, 19);
    }

    [Fact]
    public void Diagnostic_PC0001_InvalidJson_EmptyFile()
    {
        Single(Parse(""), "PC0001", 1, 1);
    }

    [Fact]
    public void Diagnostic_PC0002_InvalidUtf8()
    {
        var bytes = Encoding.UTF8.GetBytes("{ \"version\": \"1\",\n  \"description\": \"x?y\" }");
        bytes[Array.IndexOf(bytes, (byte)'?')] = 0xC3; // a lead byte with no continuation
        var result = PolicyParser.Parse(FilePath, bytes);
        Single(result, "PC0002", 2, 18);
    }

    [Fact]
    public void Diagnostic_PC0003_DuplicateKey_NamesTheFirstCopy()
    {
        var d = Single(Parse("""
            { 'version': '1',
              'tools': {
                'a': { 'action': 'deny' },
                'a': { 'action': 'allow' } } }
            """), "PC0003", 4, 5);
        Assert.Contains("line 3, column 5", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0003_DuplicateKey_InsideAnOperatorObject()
    {
        Single(Parse("""
            { 'version': '1', 'tools': { 'a': { 'rules': [
              { 'when': { 'args.n': { 'lt': 5, 'lt': 50 } }, 'action': 'deny' } ] } } }
            """), "PC0003", 2, 36);
    }

    [Fact]
    public void Diagnostic_PC0004_UnknownField_SuggestsTheNearName()
    {
        var d = Single(Parse("""
            { 'version': '1',
              'tools': { 'CreateCodeConnection': { 'limits': [
                { 'counter': 'c', 'window': 'minute', 'max': 30, 'scpoe': 'global' } ] } } }
            """), "PC0004", 3, 54);
        Assert.Equal("unknown field 'scpoe' in a limit; did you mean 'scope'?", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0004_TypoOfARequiredField_AlsoReportsItMissing()
    {
        var result = Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'windw': 'minute', 'max': 30 } ] } } }");
        Assert.Equal(new[] { ("PC0006", 49), ("PC0004", 67) }, result.Diagnostics.Select(d => (d.Id, d.Column)));
        Assert.Contains("did you mean 'window'?", result.Diagnostics[1].Message);
    }

    [Fact]
    public void Diagnostic_PC0004_UnknownTopLevelField()
    {
        var d = Single(Parse("""
            { 'version': '1', 'defualt': 'allow' }
            """), "PC0004", 1, 19);
        Assert.Contains("did you mean 'default'?", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0005_WrongType()
    {
        var d = Single(Parse("""
            { 'version': '1',
              'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': 'hour', 'max': '30' } ] } } }
            """), "PC0005", 2, 76);
        Assert.Equal("'max' must be a number, not a string", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0005_RootNotAnObject()
    {
        Single(Parse("[ 1 ]"), "PC0005", 1, 1);
    }

    [Fact]
    public void Diagnostic_PC0006_MissingVersion()
    {
        Single(Parse("""

              { 'tools': {} }
            """), "PC0006", 2, 3);
    }

    [Fact]
    public void Diagnostic_PC0006_RuleWithoutAction()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': { 'a': { 'rules': [
                { 'when': { 'grant': { 'eq': 'ci' } } } ] } } }
            """), "PC0006", 2, 5);
        Assert.Contains("'action'", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0007_UnsupportedVersion()
    {
        Single(Parse("{ 'version': '2' }"), "PC0007", 1, 14);
        Single(Parse("{ 'version': 1 }"), "PC0007", 1, 14);
    }

    [Fact]
    public void Diagnostic_PC0008_InvalidEnumValue()
    {
        var d = Single(Parse("{ 'version': '1', 'default': 'alow' }"), "PC0008", 1, 30);
        Assert.Contains("did you mean 'allow'?", d.Message);
    }

    [Theory]
    [InlineData("mode", "audit")]
    [InlineData("action", "block")]
    [InlineData("scope", "user")]
    [InlineData("align", "fixed")]
    public void Diagnostic_PC0008_EveryEnumeratedField(string field, string value)
    {
        string json = field switch
        {
            "mode" => $"{{ 'version': '1', 'mode': '{value}' }}",
            "action" => $"{{ 'version': '1', 'tools': {{ 'a': {{ 'action': '{value}' }} }} }}",
            _ => $"{{ 'version': '1', 'tools': {{ 'a': {{ 'limits': [ {{ 'counter': 'c', 'window': 60, 'max': 1, '{field}': '{value}' }} ] }} }} }}",
        };
        var result = Parse(json);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("PC0008", d.Id);
        Assert.Equal(json.IndexOf("'" + value + "'", StringComparison.Ordinal) + 1, d.Column);
    }

    [Fact]
    public void Diagnostic_PC0009_InvalidName()
    {
        Single(Parse("{ 'version': '1', 'name': 'eks prod' }"), "PC0009", 1, 27);
    }

    [Fact]
    public void Diagnostic_PC0010_NoLongerReported_ApprovalIsImplemented()
    {
        // PC0010 marked fields reserved for later versions; 'approval' was the only one, and is now read
        // (docs/approvals.md). The id stays retired, never reused.
        Assert.Empty(Parse("{ 'version': '1', 'tools': { 'a': { 'action': 'approve', 'approval': { 'timeout': '5m' } } } }").Diagnostics);
    }

    [Fact]
    public void Diagnostic_PC0011_UnknownOperator()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': { 'a': { 'rules': [
              { 'when': { 'args.path': { 'startswith': '/etc' } }, 'action': 'deny' } ] } } }
            """), "PC0011", 2, 30);
        Assert.Contains("did you mean 'prefix'?", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0011_NearTypo()
    {
        var d = Single(Parse("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.n': { 'gte ': 1 } }, 'action': 'deny' } ] } } }"), "PC0011", 1, 72);
        Assert.Contains("did you mean 'gte'?", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0012_InvalidOperand()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': { 'a': { 'rules': [
              { 'when': { 'args.count': { 'gt': '10' } }, 'action': 'deny' } ] } } }
            """), "PC0012", 2, 37);
        Assert.Equal("operator 'gt' needs a number, not a string", d.Message);
    }

    [Theory]
    [InlineData("(a)\\\\1")]
    [InlineData("(?=x)y")]
    [InlineData("(?<!x)y")]
    [InlineData("[a-")]
    [InlineData("a{2,1}")]
    public void Diagnostic_PC0013_InvalidRegex(string pattern)
    {
        string json = "{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.s': { 'regex': '" + pattern + "' } }, 'action': 'deny' } ] } } }";
        Single(Parse(json), "PC0013", 1, json.IndexOf("'regex'", StringComparison.Ordinal) + 10);
    }

    [Fact]
    public void Diagnostic_PC0014_EmptyToolKey()
    {
        Single(Parse("{ 'version': '1', 'tools': { '': {} } }"), "PC0014", 1, 30);
    }

    [Fact]
    public void Diagnostic_PC0014_EmptyGlobAndHide()
    {
        Single(Parse("{ 'version': '1', 'hide': [ 'x', '' ] }"), "PC0014", 1, 34);
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.p': { 'glob': '' } }, 'action': 'deny' } ] } } }"), "PC0014", 1, 80);
    }

    [Theory]
    [InlineData("arg.path", "a path starts with args, grant, session or tool")]
    [InlineData("args..a", "expected a property name")]
    [InlineData("args.a[01]", "invalid array index")]
    [InlineData("args.a[x]", "expected an array index")]
    [InlineData("grant.name", "has no parts")]
    [InlineData("eq", "an operator goes inside a path")]
    [InlineData("al", "did you mean 'all'?")]
    public void Diagnostic_PC0015_InvalidPath(string path, string reason)
    {
        string json = "{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { '" + path + "': { 'exists': true } }, 'action': 'deny' } ] } } }";
        var d = Single(Parse(json), "PC0015", 1, 60);
        Assert.Contains(reason, d.Message);
    }

    [Theory]
    [InlineData("'minutes'")]
    [InlineData("0")]
    [InlineData("-60")]
    [InlineData("1.5")]
    [InlineData("31622401")]
    public void Diagnostic_PC0016_InvalidWindow(string window)
    {
        string json = "{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': " + window + ", 'max': 5 } ] } } }";
        Single(Parse(json), "PC0016", 1, 77);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    public void Diagnostic_PC0017_InvalidMax(string max)
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': 'day', 'max': " + max + " } ] } } }"), "PC0017", 1, 91);
    }

    [Fact]
    public void Diagnostic_PC0018_IncrementNotPositive()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': 60, 'max': 5, 'increment': 0 } ] } } }"), "PC0018", 1, 104);
    }

    [Fact]
    public void Diagnostic_PC0018_BothIncrementForms()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': 60, 'max': 5, 'increment': 2, 'increment_from': 'args.n' } ] } } }"), "PC0018", 1, 91);
    }

    [Fact]
    public void Diagnostic_PC0019_CounterConflict()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': {
              'a': { 'limits': [ { 'counter': 'shared', 'window': 'minute', 'max': 5 } ] },
              'b': { 'limits': [ { 'counter': 'shared', 'window': 'hour', 'max': 9, 'scope': 'global' } ] } } }
            """), "PC0019", 3, 35);
        Assert.Contains("window and scope", d.Message);
        Assert.Contains("/tools/a/limits/0", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0019_SameCounterSameSettings_IsFine()
    {
        ParseValid("""
            { 'version': '1', 'tools': {
              'a': { 'limits': [ { 'counter': 'shared', 'window': 'minute', 'max': 5, 'key': 'args.repo' } ] },
              'b': { 'limits': [ { 'counter': 'shared', 'window': 60, 'max': 9, 'key': 'args[\"repo\"]' } ] } } }
            """);
    }

    [Fact]
    public void Diagnostic_PC0020_TooManyLimits_CountsTheStarLayer()
    {
        static string Limits(string prefix, int n) =>
            string.Join(", ", Enumerable.Range(0, n).Select(i => $"{{ 'counter': '{prefix}{i}', 'window': 60, 'max': 10 }}"));
        var json = "{ 'version': '1', 'tools': {\n  '*': { 'limits': [ " + Limits("w", 3) + " ] },\n  'a': { 'limits': [ " + Limits("e", 6) + " ] } } }";
        var d = Single(Parse(json), "PC0020", 3, 3);
        Assert.StartsWith("9 limits apply", d.Message);
        ParseValid(json.Replace("{ 'counter': 'e5', 'window': 60, 'max': 10 }, ", "").Replace(", { 'counter': 'e5', 'window': 60, 'max': 10 }", ""));
    }

    [Fact]
    public void Diagnostic_PC0021_InvalidCounterName()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'per repo', 'window': 60, 'max': 5 } ] } } }"), "PC0021", 1, 62);
    }

    [Fact]
    public void Diagnostic_PC0022_NoOperator()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.x': {} }, 'action': 'deny' } ] } } }"), "PC0022", 1, 70);
    }

    [Fact]
    public void Diagnostic_PC0023_IncrementFromMustBeAnArgument()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': 60, 'max': 5, 'increment_from': 'grant' } ] } } }"), "PC0023", 1, 109);
    }

    [Theory]
    [InlineData("'action': 'deny'", "action", "'default'")]
    [InlineData("'reason': 'not allowed'", "reason", "'default_reason'")]
    [InlineData("'hide': false", "hide", "top-level 'hide'")]
    public void Diagnostic_PC0024_DecidingFieldOnTheStarLayer(string field, string name, string instead)
    {
        // Located at the offending field's key: line 3, column 10.
        var d = Single(Parse("{ 'version': '1', 'tools': {\n  'Get': {},\n  '*': { " + field + ", 'limits': [] } } }"), "PC0024", 3, 10);
        Assert.Equal(PolicyDiagnosticSeverity.Error, d.Severity);
        Assert.StartsWith("'" + name + "' is not allowed on the '*' entry", d.Message);
        Assert.Contains(instead, d.Message);
    }

    private const string Pin = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    [Theory]
    [InlineData("sha256:0123")]                       // too short
    [InlineData("SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")] // prefix case
    [InlineData("sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef")] // upper-case hex
    [InlineData("sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    public void Diagnostic_PC0025_APinThatIsNotSha256Hex(string pin)
    {
        // At the value: line 2, column 17.
        var d = Single(Parse("{ 'version': '1', 'tools': {\n  'a': { 'pin': '" + pin + "' } } }"), "PC0025", 2, 17);
        Assert.Equal(PolicyDiagnosticSeverity.Error, d.Severity);
        Assert.Contains("64 lower-case hex digits", d.Message);
    }

    [Theory]
    [InlineData("get_*")]
    [InlineData("*")]
    public void Diagnostic_PC0025_APinOnAPattern(string key)
    {
        // At the key 'pin': line 2, column 9 + the key's length.
        var d = Single(Parse("{ 'version': '1', 'tools': {\n  '" + key + "': { 'pin': '" + Pin + "' } } }"), "PC0025", 2, 9 + key.Length);
        Assert.Contains("is a pattern", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0005_APinThatIsNotAString()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'pin': 5 } } }"), "PC0005", 1, 44);
    }

    [Fact]
    public void Valid_APinOnAnExactName_IsInTheModel()
    {
        var policy = ParseValid("{ 'version': '1', 'tools': { 'a': { 'pin': '" + Pin + "' }, 'b': {} } }");
        Assert.Equal(Pin, policy.Tools.Single(t => t.Name == "a").Pin);
        Assert.Null(policy.Tools.Single(t => t.Name == "b").Pin);
    }

    [Fact]
    public void Diagnostic_PC0024_EachFieldIsReported_OtherPatternsMayDecide()
    {
        var result = Parse("""
            { 'version': '1', 'tools': {
              '*': { 'rules': [], 'action': 'allow', 'reason': 'r', 'hide': true } } }
            """);
        Assert.Equal(new[] { (2, 23), (2, 42), (2, 57) }, result.Diagnostics.Where(d => d.Id == "PC0024").Select(d => (d.Line, d.Column)));
        Assert.Null(result.Policy);
        // Only the key exactly '*' is the layer: '**' and 'Delete*' are ordinary entries, and the
        // layer shadows neither (no PC0102: '*' is never selected).
        ParseValid("{ 'version': '1', 'tools': { '*': { }, '**': { 'action': 'deny' } } }");
        ParseValid("{ 'version': '1', 'tools': { '**': { 'action': 'deny', 'reason': 'r', 'hide': false }, 'Delete*': { 'action': 'approve' } } }");
        // The layer's own rules and limits are what it is for.
        var policy = ParseValid("{ 'version': '1', 'tools': { '*': { 'rules': [ { 'action': 'deny' } ], 'limits': [ { 'counter': 'c', 'window': 60, 'max': 1 } ] } } }");
        Assert.Equal(PolicyText.LayerDenyReason, policy.Tools[0].Rules[0].Reason);
    }

    [Fact]
    public void RetiredIds_AreNotInTheCatalog_AndNeverReused()
    {
        Assert.Contains("PC0105", PolicyDiagnostics.RetiredIds);
        foreach (string id in PolicyDiagnostics.RetiredIds)
        {
            Assert.DoesNotContain(PolicyDiagnostics.All, d => d.Id == id);
        }

        // A '*' entry with limits only, which PC0105 warned about, is now simply valid.
        ParseValid("{ 'version': '1', 'default': 'deny', 'tools': { '*': { 'limits': [ { 'counter': 'all', 'window': 60, 'max': 100 } ] } } }");
    }

    [Fact]
    public void Diagnostic_PC0100_RuleAfterUnconditionalRule()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': { 'a': { 'rules': [
              { 'action': 'deny', 'reason': 'always' },
              { 'when': { 'grant': { 'eq': 'ci' } }, 'action': 'allow' } ] } } }
            """), "PC0100", 3, 3);
        Assert.Contains("/tools/a/rules/0", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0100_StarLayerUnconditionalRuleHidesEntryRules()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': {
              '*': { 'rules': [ { 'when': {}, 'action': 'approve' } ] },
              'b': { 'rules': [ { 'action': 'deny' } ] } } }
            """), "PC0100", 3, 21);
        Assert.Contains("/tools/*/rules/0", d.Message);
    }

    [Theory]
    [InlineData("{ 'args.n': { 'lt': 5, 'gt': 10 } }", "'gt'", "both 'lt 5' and 'gt 10'")]
    [InlineData("{ 'all': [ { 'args.n': { 'gte': 10 } }, { 'args.n': { 'lt': 10 } } ] }", "'lt'", "'gte 10' and 'lt 10'")]
    [InlineData("{ 'args.ns': { 'eq': 'a' }, 'args[\\'ns\\']': { 'eq': 'b' } }", "'eq': 'b'", "'eq \"a\"' and 'eq \"b\"'")]
    [InlineData("{ 'args.ns': { 'exists': false, 'prefix': 'x' } }", "'prefix'", "'exists false' and 'prefix \"x\"'")]
    [InlineData("{ 'args.ns': { 'in': [] } }", "'in'", "cannot satisfy 'in []'")]
    [InlineData("{ 'args.ns': { 'in': ['a', 'b'], 'not_in': ['a', 'b'] } }", "'not_in'", "'in [\"a\", \"b\"]' and 'not_in [\"a\", \"b\"]'")]
    [InlineData("{ 'args.p': { 'prefix': '/data/', 'suffix': '.txt' }, 'args.p ': { 'exists': true } }", "", "")]
    [InlineData("{ 'args.p': { 'prefix': '/data/' }, 'args[\\'p\\']': { 'prefix': '/etc/' } }", "'prefix': '/etc/'", "'prefix \"/data/\"' and 'prefix \"/etc/\"'")]
    [InlineData("{ 'args.p': { 'eq': 7, 'prefix': '7' } }", "'prefix'", "'eq 7' and 'prefix \"7\"'")]
    [InlineData("{ 'args.p': { 'eq': '/etc/passwd', 'glob': '/data/*' } }", "'glob'", "'eq \"/etc/passwd\"' and 'glob \"/data/*\"'")]
    [InlineData("{ 'args.p': { 'eq': 'ab', 'contains': 'x' } }", "'contains'", "")]
    [InlineData("{ 'args.n': { 'eq': 3, 'neq': 3 } }", "'neq'", "")]
    [InlineData("{ 'args.n': { 'eq': 3, 'not_in': [1, 3] } }", "'not_in'", "")]
    [InlineData("{ 'args.n': { 'eq': true, 'gte': 0 } }", "'gte'", "")]
    [InlineData("{ 'any': [] }", "'any'", "'any' with no conditions")]
    [InlineData("{ 'not': {} }", "'not'", "'not' of a condition that always holds")]
    [InlineData("{ 'any': [ { 'args.n': { 'lt': 1 } }, { 'args.n': { 'lt': 1, 'gt': 2 } } ] }", "'gt'", "")]
    public void Diagnostic_PC0101_ConditionNeverTrue(string when, string marker, string detail)
    {
        string json = "{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': " + when + ", 'action': 'deny' } ] } } }";
        var result = Parse(json);
        if (marker.Length == 0)
        {
            // A path that is not a path (trailing space is part of the name here, so it is fine).
            Assert.DoesNotContain(result.Diagnostics, d => d.Id == "PC0101");
            return;
        }
        var d = Single(result, "PC0101", 1, json.LastIndexOf(marker, StringComparison.Ordinal) + 1);
        Assert.Equal(PolicyDiagnosticSeverity.Warning, d.Severity);
        Assert.Contains(detail, d.Message);
    }

    [Theory]
    [InlineData("{ 'args.n': { 'gt': 5, 'lt': 10 } }")]
    [InlineData("{ 'args.n': { 'gte': 10, 'lte': 10 } }")]
    [InlineData("{ 'args.ns': { 'eq': 'a', 'in': ['a', 'b'] } }")]
    [InlineData("{ 'args.ns': { 'exists': false }, 'args.other': { 'eq': 1 } }")]
    [InlineData("{ 'any': [ { 'args.n': { 'lt': 5 } }, { 'args.n': { 'gt': 10 } } ] }")]
    [InlineData("{ 'args.p': { 'prefix': '/data/', 'suffix': '.txt', 'glob': '/data/*.txt' } }")]
    [InlineData("{ 'not': { 'args.n': { 'lt': 5, 'gt': 10 } } }")]
    public void Valid_SatisfiableConditions_HaveNoWarning(string when)
    {
        ParseValid("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': " + when + ", 'action': 'deny' } ] } } }".Replace("\\'", "\\\""));
    }

    [Fact]
    public void Diagnostic_PC0102_PatternShadowedByAMoreSpecificOne()
    {
        var d = Single(Parse("""
            { 'version': '1', 'tools': {
              'Delete*': { 'action': 'approve' },
              'Delete**': { 'action': 'deny' } } }
            """), "PC0102", 3, 3);
        Assert.Contains("'Delete*'", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0102_EntryHiddenByTopLevelHide()
    {
        var d = Single(Parse("""
            { 'version': '1', 'hide': [ '*Secret*' ], 'tools': {
              'GetSecretValue': {} } }
            """), "PC0102", 2, 3);
        Assert.Contains("/hide/0", d.Message);
    }

    [Fact]
    public void Diagnostic_PC0103_UnusualToolName()
    {
        var d = Single(Parse("{ 'version': '1', 'tools': { 'create cluster': {} } }"), "PC0103", 1, 30);
        Assert.Equal(PolicyDiagnosticSeverity.Warning, d.Severity);
    }

    [Fact]
    public void Diagnostic_PC0104_IncrementAboveMax()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'c', 'window': 60, 'max': 5, 'increment': 6 } ] } } }"), "PC0104", 1, 104);
    }

    [Theory]
    [InlineData("'0s'")]
    [InlineData("'2d'")]
    [InlineData("'25h'")]
    [InlineData("'5 m'")]
    [InlineData("'soon'")]
    [InlineData("0")]
    [InlineData("1.5")]
    [InlineData("86401")]
    public void Diagnostic_PC0026_InvalidApprovalTimeout(string timeout)
    {
        string json = "{ 'version': '1', 'tools': { 'a': { 'approval': { 'timeout': " + timeout + " } } } }";
        var d = Single(Parse(json), "PC0026", 1, json.IndexOf(timeout, StringComparison.Ordinal) + 1);
        Assert.Contains("from 1 second to 1 day", d.Message);
    }

    [Fact]
    public void EveryId_HasATest_AndIdsAreUniqueWithFixedRanges()
    {
        var ids = PolicyDiagnostics.All.Select(d => d.Id).ToArray();
        Assert.Equal(ids.Length, ids.Distinct().Count());
        foreach (var d in PolicyDiagnostics.All)
        {
            int number = int.Parse(d.Id.AsSpan(2));
            Assert.Equal(d.Severity == PolicyDiagnosticSeverity.Error, number < 100);
            Assert.Contains(typeof(PolicyDiagnosticTests).GetMethods(), m => m.Name.StartsWith("Diagnostic_" + d.Id, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Diagnostics_AreInFileOrder_AndAllReported()
    {
        var result = Parse("""
            { 'version': '1', 'mode': 'loud',
              'tools': { 'a': { 'acton': 'deny', 'limits': [ { 'counter': 'c', 'window': 'week', 'max': 0 } ] } } }
            """);
        Assert.Equal(new[] { "PC0008", "PC0004", "PC0016", "PC0017" }, result.Diagnostics.Select(d => d.Id));
        Assert.Null(result.Policy);
        Assert.Equal("policies/test.json(1,27): error PC0008: \"loud\" is not a valid value for 'mode'; expected enforce | shadow", result.Diagnostics[0].ToString());
    }

    [Fact]
    public void Columns_CountCharactersNotBytes()
    {
        // 'é' is two bytes in UTF-8 but one column in an editor.
        var d = Single(Parse("{ 'description': 'é', 'version': '1', 'x': 1 }"), "PC0004", 1, 39);
        Assert.Equal(Encoding.UTF8.GetByteCount("{ 'description': 'é', 'version': '1', "), d.Offset);
        Assert.Equal(3, d.Length);
    }

    [Fact]
    public void ByteOrderMark_IsSkipped_AndPositionsStayRight()
    {
        var bytes = new byte[] { 0xEF, 0xBB, 0xBF }.Concat(Encoding.UTF8.GetBytes("{ \"version\": \"1\", \"x\": 1 }")).ToArray();
        var result = PolicyParser.Parse(FilePath, bytes);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal((1, 19, 21), (d.Line, d.Column, d.Offset));
    }
}
