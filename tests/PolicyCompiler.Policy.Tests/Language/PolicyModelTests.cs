using PolicyCompiler.Policy.Language;
using static PolicyCompiler.Policy.Tests.Language.PolicyTestHelpers;

namespace PolicyCompiler.Policy.Tests.Language;

/// <summary>What the parser puts in the model: pointers, reasons, conditions, operands, paths, patterns.</summary>
public class PolicyModelTests
{
    // 'x/y~z' is outside the MCP name syntax (PC0103, a warning): it is here to exercise pointer escaping.
    private static PolicyDocument Full() => ParseValid("PC0103", """
        { 'version': '1', 'name': 'eks-prod', 'description': 'd', 'default': 'allow', 'default_reason': 'no',
          'mode': 'shadow', 'hide': [ '*Secret*', 'a/b~c' ],
          'tools': {
            'Delete*': { 'action': 'approve' },
            'Drop': { 'action': 'deny', 'reason': 'never drop' },
            'x/y~z': { 'rules': [
              { 'when': { 'args.ns': { 'eq': 'kube-system' } }, 'action': 'deny' },
              { 'when': { 'grant': { 'in': ['ops', 'ci'] }, 'args.n': { 'lte': 3 } }, 'action': 'approve', 'reason': 'ask' },
              { 'when': { 'not': { 'any': [ { 'args.items[0]': { 'exists': true } }, { 'all': [ { 'tool': { 'prefix': 'x' } } ] } ] } }, 'action': 'allow' } ],
              'limits': [
                { 'counter': 'spend', 'window': 3600, 'max': 2.5, 'scope': 'global', 'increment_from': 'args.cost', 'align': 'calendar' },
                { 'counter': 'per-repo', 'window': 'day', 'max': 10, 'scope': 'session', 'key': 'args.repo', 'increment': 2 },
                { 'counter': 'named', 'window': 'second', 'max': 1, 'reason': 'slow down' } ] } } }
        """);

    [Fact]
    public void Document_Fields()
    {
        var p = Full();
        Assert.Equal(("eks-prod", "d", DefaultAction.Allow, "no", PolicyMode.Shadow), (p.Name, p.Description, p.Default, p.DefaultReason, p.Mode));
        Assert.Equal(new[] { new HidePattern("*Secret*", "/hide/0"), new HidePattern("a/b~c", "/hide/1") }, p.Hide);
        Assert.Equal(new[] { "Delete*", "Drop", "x/y~z" }, p.Tools.Select(t => t.Name));
        Assert.Equal(new[] { true, false, false }, p.Tools.Select(t => t.IsPattern));
    }

    [Fact]
    public void Pointers_EscapeTildeAndSlash_Rfc6901()
    {
        var entry = Full().Tools[2];
        Assert.Equal("/tools/x~1y~0z", entry.Pointer);
        Assert.Equal("/tools/x~1y~0z/rules/1", entry.Rules[1].Pointer);
        Assert.Equal("/tools/x~1y~0z/limits/2", entry.Limits[2].Pointer);
        Assert.Equal("/tools/x~1y~0z/rules/0/when/args.ns/eq", entry.Rules[0].When!.Pointer);
        Assert.Equal("a~1b~0~0~1", PolicyPatterns.EscapePointerToken("a/b~~/"));
    }

    [Fact]
    public void Reasons_AreResolved_RuleThenEntryThenDefault()
    {
        var p = Full();
        Assert.Equal((ToolAction.Approve, true, "approval required by policy entry 'Delete*'"), (p.Tools[0].Action, p.Tools[0].ActionIsExplicit, p.Tools[0].Reason));
        Assert.Equal("never drop", p.Tools[1].Reason);
        var rules = p.Tools[2].Rules;
        Assert.Equal("denied by policy entry 'x/y~z'", rules[0].Reason);
        Assert.Equal("ask", rules[1].Reason);
        Assert.Null(rules[2].Reason);

        var inherited = ParseValid("{ 'version': '1', 'tools': { 'a': { 'reason': 'entry says', 'rules': [ { 'when': { 'args.x': { 'exists': true } }, 'action': 'deny' } ] } } }");
        Assert.Equal("entry says", inherited.Tools[0].Rules[0].Reason);
        Assert.Equal(PolicyText.HiddenReason, "tool is hidden by policy");
    }

    [Fact]
    public void Limits_FieldsAndGeneratedReasons()
    {
        var limits = Full().Tools[2].Limits;
        Assert.Equal(new LimitWindow(3600, WindowAlignment.Calendar), limits[0].Window);
        Assert.Equal((2.5, LimitScope.Global, "args.cost"), (limits[0].Max, limits[0].Scope, limits[0].IncrementFrom!.Text));
        Assert.Equal("spend limit 'spend' allows 2.5 of args.cost per calendar hour in total", limits[0].Reason);
        Assert.Equal((2d, LimitScope.Session, "args.repo"), (limits[1].Increment, limits[1].Scope, limits[1].Key!.Text));
        Assert.Equal("rate limit 'per-repo' allows 10 per day per session and per args.repo", limits[1].Reason);
        Assert.Equal("slow down", limits[2].Reason);
        Assert.Equal("rate limit 'x' allows 3 per 90 seconds per grant",
            ParseValid("{ 'version': '1', 'tools': { 'a': { 'limits': [ { 'counter': 'x', 'window': 90, 'max': 3 } ] } } }").Tools[0].Limits[0].Reason);
        Assert.Equal("argument 'args.cost' must be a non-negative number (limit 'spend')", PolicyText.InvalidIncrementReason(limits[0]));
    }

    [Fact]
    public void Conditions_MapToTheModel()
    {
        var rules = Full().Tools[2].Rules;
        var test = Assert.IsType<TestCondition>(rules[0].When);
        Assert.Equal((ValueSource.Args, ConditionOperator.Eq, "kube-system"), (test.Path.Source, test.Operator, test.Operand.String));

        // Two paths in one object: an implicit AND at the object's pointer, in file order.
        var and = Assert.IsType<AllCondition>(rules[1].When);
        Assert.Equal("/tools/x~1y~0z/rules/1/when", and.Pointer);
        var grant = Assert.IsType<TestCondition>(and.Conditions[0]);
        Assert.Equal((ValueSource.Grant, ConditionOperator.In), (grant.Path.Source, grant.Operator));
        Assert.Equal(new[] { "ops", "ci" }, grant.Operand.Items.Select(i => i.String));
        var lte = Assert.IsType<TestCondition>(and.Conditions[1]);
        Assert.Equal((ConditionOperator.Lte, 3d), (lte.Operator, lte.Operand.Number));

        var not = Assert.IsType<NotCondition>(rules[2].When);
        Assert.Equal("/tools/x~1y~0z/rules/2/when/not", not.Pointer);
        var any = Assert.IsType<AnyCondition>(not.Condition);
        Assert.Equal("/tools/x~1y~0z/rules/2/when/not/any", any.Pointer);
        var exists = Assert.IsType<TestCondition>(any.Conditions[0]);
        Assert.Equal("/tools/x~1y~0z/rules/2/when/not/any/0/args.items[0]/exists", exists.Pointer);
        Assert.Equal(new[] { new PathSegment("items", -1), new PathSegment(null, 0) }, exists.Path.Segments);
        var all = Assert.IsType<AllCondition>(any.Conditions[1]);
        Assert.Equal(ValueSource.Tool, Assert.IsType<TestCondition>(Assert.Single(all.Conditions)).Path.Source);
    }

    [Theory]
    [InlineData("eq", "'s'", ConstantKind.String)]
    [InlineData("eq", "1.5", ConstantKind.Number)]
    [InlineData("eq", "true", ConstantKind.Boolean)]
    [InlineData("eq", "null", ConstantKind.Null)]
    [InlineData("neq", "'s'", ConstantKind.String)]
    [InlineData("in", "[1, 's', false, null]", ConstantKind.Array)]
    [InlineData("not_in", "[]", ConstantKind.Array)]
    [InlineData("lt", "1", ConstantKind.Number)]
    [InlineData("lte", "-1e3", ConstantKind.Number)]
    [InlineData("gt", "0", ConstantKind.Number)]
    [InlineData("gte", "0.25", ConstantKind.Number)]
    [InlineData("prefix", "'/data/'", ConstantKind.String)]
    [InlineData("suffix", "'.txt'", ConstantKind.String)]
    [InlineData("contains", "'..'", ConstantKind.String)]
    [InlineData("contains", "3", ConstantKind.Number)]
    [InlineData("regex", "'^[a-z]+(-[a-z0-9]+)*$'", ConstantKind.String)]
    [InlineData("glob", "'/data/**/*.txt'", ConstantKind.String)]
    [InlineData("exists", "false", ConstantKind.Boolean)]
    public void Operands_AcceptedPerOperator(string op, string operand, ConstantKind kind)
    {
        var policy = ParseValid("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.v': { '" + op + "': " + operand + " } }, 'action': 'allow' } ] } } }");
        var test = Assert.IsType<TestCondition>(policy.Tools[0].Rules[0].When);
        Assert.Equal(kind, test.Operand.Kind);
        Assert.Equal(op.Replace("_", ""), test.Operator.ToString(), ignoreCase: true);
    }

    [Theory]
    [InlineData("eq", "[1]")]
    [InlineData("eq", "{}")]
    [InlineData("neq", "[]")]
    [InlineData("in", "'a'")]
    [InlineData("in", "[[1]]")]
    [InlineData("not_in", "[{}]")]
    [InlineData("lt", "'5'")]
    [InlineData("lte", "true")]
    [InlineData("gt", "null")]
    [InlineData("gte", "[1]")]
    [InlineData("prefix", "1")]
    [InlineData("suffix", "null")]
    [InlineData("contains", "[]")]
    [InlineData("regex", "1")]
    [InlineData("glob", "true")]
    [InlineData("exists", "'yes'")]
    public void Operands_RejectedPerOperator(string op, string operand)
    {
        var result = Parse("{ 'version': '1', 'tools': { 'a': { 'rules': [ { 'when': { 'args.v': { '" + op + "': " + operand + " } }, 'action': 'allow' } ] } } }");
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("PC0012", d.Id);
        Assert.Null(result.Policy);
    }

    [Theory]
    [InlineData("args", ValueSource.Args, "")]
    [InlineData("args.a.b", ValueSource.Args, ".a.b")]
    [InlineData("args.items[12].name", ValueSource.Args, ".items[12].name")]
    [InlineData("args[\"key.with.dots\"][0]", ValueSource.Args, ".key.with.dots[0]")]
    [InlineData("args[\"q\\\"b\\\\\"]", ValueSource.Args, ".q\"b\\")]
    [InlineData("args.ünïcødé", ValueSource.Args, ".ünïcødé")]
    [InlineData("grant", ValueSource.Grant, "")]
    [InlineData("session", ValueSource.Session, "")]
    [InlineData("tool", ValueSource.Tool, "")]
    public void Paths_Parse(string text, ValueSource source, string steps)
    {
        Assert.True(PolicyPaths.TryParse(text, out var path, out var error), error);
        Assert.Equal(source, path!.Source);
        Assert.Equal(text, path.Text);
        Assert.Equal(steps, string.Concat(path.Segments.Select(s => s.Property is null ? $"[{s.Index}]" : "." + s.Property)));
    }

    [Theory]
    [InlineData("")]
    [InlineData("Args.a")]
    [InlineData("args.")]
    [InlineData("args.a]")]
    [InlineData("args[\"a\"")]
    [InlineData("args[-1]")]
    [InlineData("args[99999999999]")]
    [InlineData("session[0]")]
    [InlineData("args.a\"b")]
    public void Paths_Reject(string text)
    {
        Assert.False(PolicyPaths.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Theory]
    [InlineData("Delete*", "DeleteCluster", true)]
    [InlineData("Delete*", "Delete", true)]
    [InlineData("Delete*", "delete", false)]
    [InlineData("*Secret*", "GetSecretValue", true)]
    [InlineData("get_?", "get_x", true)]
    [InlineData("get_?", "get_xy", false)]
    [InlineData("a*b*c", "aXbYbZc", true)]
    [InlineData("a*b*c", "aXbYbZ", false)]
    [InlineData("*", "", true)]
    [InlineData("?", "😀", true)]
    [InlineData("/data/*", "/data/x/../../etc", true)]
    public void Patterns_Match(string pattern, string text, bool expected)
    {
        Assert.Equal(expected, PolicyPatterns.Matches(pattern, text));
    }

    [Fact]
    public void Patterns_SpecificityOrder_MatchesTheDocs()
    {
        // More literal characters first; then fewer wildcards; then ordinal order of the key.
        var keys = new[] { "*", "Delete*", "*Cluster", "Delete?*", "DeleteC*", "D*e*", "Delete**", "a?", "a*" };
        Array.Sort(keys, PolicyPatterns.CompareSpecificity);
        Assert.Equal(new[] { "*Cluster", "DeleteC*", "Delete*", "Delete**", "Delete?*", "D*e*", "a*", "a?", "*" }, keys);
    }

    [Theory]
    [InlineData("*", "Delete*", true)]
    [InlineData("Delete*", "DeleteC*", true)]
    [InlineData("Delete*", "Delete?", true)]
    [InlineData("Delete?", "Delete*", false)]
    [InlineData("a?", "a*", false)]
    [InlineData("a*", "a?", true)]
    [InlineData("*Secret*", "GetSecretValue", true)]
    [InlineData("Get*", "*Secret*", false)]
    public void Patterns_Cover(string general, string specific, bool expected)
    {
        Assert.Equal(expected, PolicyPatterns.Covers(general, specific));
    }

    [Fact]
    public void Name_DefaultsToTheSanitisedFileName()
    {
        Assert.Equal("eks", PolicyParser.DefaultName("policies/eks.json"));
        Assert.Equal("my_policy.v2", PolicyParser.DefaultName("/x/my policy.v2.json"));
        Assert.Equal(new string('a', 64), PolicyParser.DefaultName(new string('a', 80) + ".json"));
        Assert.Equal("policy", PolicyParser.DefaultName(".json"));
    }

    [Fact]
    public void Unicode_InKeysAndReasons_IsDecoded()
    {
        var policy = ParseValid("PC0103", "{ \"version\": \"1\", \"tools\": { \"t\\u00e9\": { \"action\": \"deny\", \"reason\": \"quote \\\" and \\\\ and \\n\" } } }", singleQuotes: false);
        Assert.Equal("té", policy.Tools[0].Name);
        Assert.Equal("quote \" and \\ and \n", policy.Tools[0].Reason);
    }
}
