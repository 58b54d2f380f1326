using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using static PolicyCompiler.Policy.Tests.Language.PolicyTestHelpers;

namespace PolicyCompiler.Policy.Tests.Language;

/// <summary><c>"approval": { "timeout": ... }</c> on an entry and at the top level (docs/approvals.md).</summary>
public class ApprovalFieldTests
{
    [Theory]
    [InlineData("'5m'", 300)]
    [InlineData("'90s'", 90)]
    [InlineData("'1h'", 3600)]
    [InlineData("'minute'", 60)]
    [InlineData("'day'", 86400)]
    [InlineData("45", 45)]
    [InlineData("86400", 86400)]
    public void Valid_Timeout(string timeout, long seconds)
    {
        PolicyDocument policy = ParseValid("{ 'version': '1', 'tools': { 'Delete*': { 'action': 'approve', 'approval': { 'timeout': " + timeout + " } } } }");
        Assert.Equal(seconds, policy.Tools[0].ApprovalTimeoutSeconds);
        Assert.Null(policy.ApprovalTimeoutSeconds);
    }

    [Fact]
    public void Valid_TopLevelAndLayer_AndTheInterpreterExposesThemByPointer()
    {
        PolicyDocument policy = ParseValid("""
            { 'version': '1', 'approval': { 'timeout': '10m' }, 'tools': {
              '*': { 'rules': [ { 'when': { 'args.force': { 'eq': true } }, 'action': 'approve' } ], 'approval': { 'timeout': 30 } },
              'Delete*': { 'action': 'approve', 'approval': { 'timeout': '1h' } },
              'plain': { 'action': 'approve' },
              'empty': { 'action': 'approve', 'approval': {} } } }
            """);
        Assert.Equal(600, policy.ApprovalTimeoutSeconds);
        var timeouts = new PolicyInterpreter(policy).Policy.ApprovalTimeouts;
        Assert.Equal(600, timeouts[""]);
        Assert.Equal(30, timeouts["/tools/*"]);
        Assert.Equal(3600, timeouts["/tools/Delete*"]); // the entry's pointer, as it starts the pointer of its rules
        Assert.Equal(3, timeouts.Count);
    }

    [Fact]
    public void Diagnostic_WrongTypes_AndUnknownFields()
    {
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'approval': '5m' } } }"), "PC0005", 1, 49);
        Single(Parse("{ 'version': '1', 'tools': { 'a': { 'approval': { 'timeout': true } } } }"), "PC0005", 1, 62);
        var d = Single(Parse("{ 'version': '1', 'approval': { 'timout': '5m' } }"), "PC0004", 1, 33);
        Assert.Contains("did you mean 'timeout'?", d.Message);
    }
}
