using System.CommandLine;
using PolicyCompiler.Gateway.Hosting;
using PolicyCompiler.Http.Tests.Infrastructure;

namespace PolicyCompiler.Http.Tests;

/// <summary>`GATEWAY http` option parsing (the built gateway and `policyc run http` share it).</summary>
public sealed class CommandLineTests
{
    private static ParseResult Parse(params string[] args)
    {
        var evaluator = TestGateway.CreateEvaluator();
        Command root = GatewayCommandLine.CreateRootCommand(_ => evaluator, evaluator.Policy, "gw");
        return root.Parse(args);
    }

    [Fact]
    public void Defaults_Parse_WithOnlyAnUpstream()
    {
        ParseResult result = Parse("http", "--upstream", "http://127.0.0.1:9/mcp");
        Assert.Empty(result.Errors);
    }

    [Theory]
    [InlineData("--listen", "nonsense", "--listen")]
    [InlineData("--admin", "localhost", "--admin")]
    [InlineData("--upstream-header", "no colon here", "--upstream-header")]
    [InlineData("--max-message-bytes", "10", "--max-message-bytes")]
    [InlineData("--session-idle-timeout", "0", "--session-idle-timeout")]
    [InlineData("--upstream", "ftp://x/", "--upstream")]
    public void InvalidValues_AreRejected(string option, string value, string mentioned)
    {
        string[] args = option == "--upstream"
            ? ["http", option, value]
            : ["http", "--upstream", "http://127.0.0.1:9/mcp", option, value];
        ParseResult result = Parse(args);
        Assert.Contains(result.Errors, e => e.Message.Contains(mentioned, StringComparison.Ordinal));
    }

    [Fact]
    public void Stdio_TakesAnUpstreamUrl_InsteadOfACommand()
    {
        Assert.Empty(Parse("stdio", "--upstream", "http://127.0.0.1:9/mcp", "--upstream-header", "Authorization: Bearer x").Errors);
        Assert.NotEmpty(Parse("stdio").Errors);
        Assert.NotEmpty(Parse("stdio", "--upstream", "http://127.0.0.1:9/mcp", "--", "server").Errors);
        Assert.NotEmpty(Parse("stdio", "--upstream", "ftp://x/").Errors);
        Assert.NotEmpty(Parse("stdio", "--upstream", "http://127.0.0.1:9/mcp", "--upstream-header", "nocolon").Errors);
        Assert.Empty(Parse("stdio", "--", "server", "arg").Errors);
    }

    [Fact]
    public void Http_TakesACommand_InsteadOfAnUpstreamUrl()
    {
        Assert.Empty(Parse("http", "--listen", "127.0.0.1:0", "--", "dotnet", "server.dll").Errors);
        Assert.NotEmpty(Parse("http", "--upstream", "http://127.0.0.1:9/mcp", "--", "server").Errors);
    }

    [Fact]
    public void MissingUpstream_IsAnError()
    {
        Assert.NotEmpty(Parse("http").Errors);
    }

    [Theory]
    [InlineData("Authorization: Bearer x", "Authorization", "Bearer x")]
    [InlineData("X-Api-Key:abc", "X-Api-Key", "abc")]
    public void UpstreamHeader_IsSplitAtTheFirstColon(string text, string name, string value)
    {
        Assert.True(HttpCommandOptions.TryParseHeader(text, out KeyValuePair<string, string> header));
        Assert.Equal(name, header.Key);
        Assert.Equal(value, header.Value);
    }
}

/// <summary>The grants file: parsing, hashing, constant-time lookup outcomes.</summary>
public sealed class GrantTableTests
{
    [Fact]
    public void NewGrant_LineAdmitsItsToken_AndNoOther()
    {
        (string token, string line) = PolicyCompiler.Gateway.Transport.StreamableHttp.GrantTable.NewGrant("ci");
        var table = PolicyCompiler.Gateway.Transport.StreamableHttp.GrantTable.Parse("{" + line + "}");
        Assert.Equal(PolicyCompiler.Gateway.Transport.StreamableHttp.GrantCheck.Granted, table.Check("Bearer " + token, DateTimeOffset.UtcNow, out string grant));
        Assert.Equal("ci", grant);
        Assert.Equal(PolicyCompiler.Gateway.Transport.StreamableHttp.GrantCheck.Unknown, table.Check("Bearer " + token + "x", DateTimeOffset.UtcNow, out _));
        Assert.Equal(PolicyCompiler.Gateway.Transport.StreamableHttp.GrantCheck.Missing, table.Check("Basic abc", DateTimeOffset.UtcNow, out _));
        Assert.Equal(PolicyCompiler.Gateway.Transport.StreamableHttp.GrantCheck.Missing, table.Check(null, DateTimeOffset.UtcNow, out _));
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("""{"a": "md5:abc"}""")]
    [InlineData("""{"a": "sha256:zz"}""")]
    [InlineData("""{"a": {"token": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "expires": "soon"}}""")]
    [InlineData("""{"a": 1}""")]
    public void InvalidFiles_AreRejectedWithAReason(string json)
    {
        Assert.Throws<FormatException>(() => PolicyCompiler.Gateway.Transport.StreamableHttp.GrantTable.Parse(json));
    }
}
