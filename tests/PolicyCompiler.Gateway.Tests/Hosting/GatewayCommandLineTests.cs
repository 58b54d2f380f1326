using System.CommandLine;
using PolicyCompiler.Gateway.Hosting;
using PolicyCompiler.Gateway.Tests.TestSupport;

namespace PolicyCompiler.Gateway.Tests.Hosting;

public class GatewayCommandLineTests
{
    private static async Task<(int ExitCode, string Output)> InvokeAsync(params string[] args)
    {
        var policy = new FakeEvaluator();
        Command root = GatewayCommandLine.CreateRootCommand(_ => policy, policy.Policy, "eks-gateway");
        var output = new StringWriter();
        int exitCode = await root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = new StringWriter() });
        return (exitCode, output.ToString());
    }

    [Fact]
    public async Task Version_PrintsGatewayPolicyAndHash()
    {
        (int exitCode, string output) = await InvokeAsync("--version");
        Assert.Equal(0, exitCode);
        Assert.Equal($"eks-gateway (policy fake, sha256 {new string('a', 64)}, mode enforce)", output.Trim());
    }

    [Fact]
    public async Task Policy_PrintsTheCompiledInText()
    {
        (int exitCode, string output) = await InvokeAsync("policy");
        Assert.Equal(0, exitCode);
        Assert.Equal("{ \"version\": \"1\" }\n", output);
    }

    [Fact]
    public void Stdio_ParsesOptionsAndTheCommandAfterDoubleDash()
    {
        var policy = new FakeEvaluator();
        Command root = GatewayCommandLine.CreateRootCommand(_ => policy, policy.Policy, "g");
        ParseResult parsed = root.Parse(["stdio", "--grant", "ci", "--max-message-bytes", "1024", "--", "npx", "-y", "server", "--grant", "x"]);
        Assert.Empty(parsed.Errors);
        Assert.Equal("ci", parsed.GetValue<string>("--grant"));
        Assert.Equal(1024L, parsed.GetValue<long>("--max-message-bytes"));
        Assert.Equal(["npx", "-y", "server", "--grant", "x"], parsed.GetValue<string[]>("command")!);
    }

    [Fact]
    public void Stdio_DefaultsGrantAndLimit()
    {
        var policy = new FakeEvaluator();
        Command root = GatewayCommandLine.CreateRootCommand(_ => policy, policy.Policy, "g");
        ParseResult parsed = root.Parse(["stdio", "--", "server"]);
        Assert.Empty(parsed.Errors);
        Assert.Equal(Environment.GetEnvironmentVariable(GatewayCommandLine.GrantEnvironmentVariable) ?? "default", parsed.GetValue<string>("--grant"));
        Assert.Equal(GatewayOptions.DefaultMaxMessageBytes, parsed.GetValue<long>("--max-message-bytes"));
    }

    [Fact]
    public void Stdio_WithoutCommand_IsAnError()
    {
        var policy = new FakeEvaluator();
        Command root = GatewayCommandLine.CreateRootCommand(_ => policy, policy.Policy, "g");
        Assert.NotEmpty(root.Parse(["stdio"]).Errors);
        Assert.NotEmpty(root.Parse(["stdio", "--max-message-bytes", "1", "--", "x"]).Errors);
    }

    [Fact]
    public async Task Help_NamesTheGatewayNotTheHostAssembly()
    {
        (int exitCode, string output) = await InvokeAsync("--help");
        Assert.Equal(0, exitCode);
        Assert.Contains("eks-gateway [command] [options]", output);
        Assert.DoesNotContain("PolicyCompiler.Gateway", output);

        (exitCode, output) = await InvokeAsync("stdio", "--help");
        Assert.Equal(0, exitCode);
        Assert.Contains("eks-gateway stdio", output);
    }

    [Fact]
    public void DefaultName_IsTheExecutablesFileName()
    {
        // Under the test host the process is `dotnet testhost.dll`: the application is the .dll.
        Assert.Equal(Path.GetFileNameWithoutExtension(Environment.GetCommandLineArgs()[0]), GatewayCommandLine.DefaultGatewayName());
    }

    [Fact]
    public void InternalCommand_IsNotAnOrdinaryArgument()
    {
        // Malformed internal invocations fail without starting anything. (An ordinary command line is not
        // tried here: it would enable the launcher for the whole test host, whose entry point cannot route it.)
        Assert.True(GatewayCommandLine.TryRunInternalCommand(["__policycompiler-exec-upstream", "not-a-pid", "true"], out int exitCode));
        Assert.Equal(2, exitCode);
    }
}
