namespace PolicyCompiler.EndToEnd.Tests.Infrastructure;

/// <summary>
/// Builds the native gateway for Policies/e2e.json once per test run, the way a user does:
/// <c>policyc build POLICY -o OUTPUT</c> (a Native AOT publish with the policy compiled in).
/// </summary>
public sealed class NativeGatewayFixture : IAsyncLifetime
{
    /// <summary>The built executable.</summary>
    public string GatewayPath { get; private set; } = "";

    /// <summary>What policyc build printed.</summary>
    public string BuildOutput { get; private set; } = "";

    /// <summary>The policy compiled into the gateway.</summary>
    public string PolicyPath { get; } = Repo.TestPolicy("e2e.json");

    public async Task InitializeAsync()
    {
        var outputDirectory = Path.Combine(Path.GetTempPath(), "policycompiler-e2e-" + Environment.ProcessId);
        Directory.CreateDirectory(outputDirectory);
        GatewayPath = Path.Combine(outputDirectory, "e2e-gateway");

        var policyc = Path.Combine(Repo.Root, "src", "PolicyCompiler.Cli", "bin", Repo.Configuration, "net10.0", "policyc.dll");
        var result = await ProcessRunner.RunAsync(
            "dotnet",
            [policyc, "build", PolicyPath, "-o", GatewayPath],
            TimeSpan.FromMinutes(10));
        BuildOutput = result.StandardOutput + result.StandardError;
        if (result.ExitCode != 0 || !File.Exists(GatewayPath))
        {
            throw new InvalidOperationException($"policyc build failed (exit {result.ExitCode}):\n{BuildOutput}");
        }
    }

    public Task DisposeAsync()
    {
        try { Directory.Delete(Path.GetDirectoryName(GatewayPath)!, recursive: true); } catch (IOException) { }
        return Task.CompletedTask;
    }
}

/// <summary>Every test class that needs the native gateway shares one build.</summary>
[CollectionDefinition(Name)]
public sealed class NativeGatewayCollection : ICollectionFixture<NativeGatewayFixture>
{
    public const string Name = "native gateway";
}
