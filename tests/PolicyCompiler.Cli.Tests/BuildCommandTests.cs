using System.Text.RegularExpressions;
using PolicyCompiler.Cli;
using PolicyCompiler.Cli.Commands;

namespace PolicyCompiler.Cli.Tests;

/// <summary><c>policyc build</c>: everything that must fail before a publish starts, and the build slots.</summary>
public sealed class BuildCommandTests() : CliTest("policyc-build-")
{
    [Fact]
    public void InvalidPolicy_Exits1_WithTheFileLineColumnDiagnostic_AndPublishesNothing()
    {
        string policy = Write("bad.json", """
            {
              "version": "1",
              "tools": { "x": { "action": "explode" } }
            }
            """);
        string output = Path.Combine(TempDirectory, "gateway");

        (int exitCode, string stdout, string stderr) = Invoke("build", policy, "-o", output);

        Assert.Equal(1, exitCode);
        Assert.Matches(new Regex(Regex.Escape(policy) + @"\(3,\d+\): error PC\d{4}"), stderr);
        Assert.Contains("nothing was built", stderr);
        Assert.DoesNotContain("compiling policy", stderr);
        Assert.Equal(string.Empty, stdout);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void MissingPolicyFile_Exits1()
    {
        (int exitCode, _, string stderr) = Invoke("build", Path.Combine(TempDirectory, "absent.json"), "-o", Path.Combine(TempDirectory, "g"));
        Assert.Equal(1, exitCode);
        Assert.Contains("cannot read the file", stderr);
    }

    [Fact]
    public void WithoutOutput_IsAUsageError()
    {
        (int exitCode, _, string stderr) = Invoke("build", Write("ok.json", """{ "version": "1" }"""));
        Assert.NotEqual(0, exitCode);
        Assert.Contains("--output", stderr);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SourceThatIsNotASourceTree_Exits1_WithAClearMessage(bool exists)
    {
        string policy = Write("ok.json", """{ "version": "1" }""");
        string source = Path.Combine(TempDirectory, exists ? "empty" : "nowhere");
        if (exists)
        {
            Directory.CreateDirectory(source);
        }

        (int exitCode, _, string stderr) = Invoke("build", policy, "-o", Path.Combine(TempDirectory, "g"), "--source", source);

        Assert.Equal(1, exitCode);
        Assert.Contains(exists ? "is not a PolicyCompiler source tree" : "does not exist", stderr);
        Assert.DoesNotContain("compiling policy", stderr);
    }

    [Fact]
    public void ConcurrentBuilds_GetTheirOwnSlot_AndARepeatBuildReusesTheFirst()
    {
        string cache = Path.Combine(TempDirectory, "cache");
        string first;
        using (var a = BuildCommand.BuildSlot.Acquire("/src/tree", "linux-x64", cache))
        using (var b = BuildCommand.BuildSlot.Acquire("/src/tree", "linux-x64", cache))
        {
            first = a.ArtifactsPath;
            Assert.NotEqual(a.ArtifactsPath, b.ArtifactsPath);
            Assert.Equal(Path.GetDirectoryName(a.ArtifactsPath), Path.GetDirectoryName(b.ArtifactsPath));
        }

        using (var again = BuildCommand.BuildSlot.Acquire("/src/tree", "linux-x64", cache))
        {
            Assert.Equal(first, again.ArtifactsPath);
        }

        // Another RID or another source tree never shares a slot directory.
        using var otherRid = BuildCommand.BuildSlot.Acquire("/src/tree", "linux-arm64", cache);
        using var otherTree = BuildCommand.BuildSlot.Acquire("/src/other", "linux-x64", cache);
        Assert.NotEqual(Path.GetDirectoryName(first), Path.GetDirectoryName(otherRid.ArtifactsPath));
        Assert.NotEqual(Path.GetDirectoryName(first), Path.GetDirectoryName(otherTree.ArtifactsPath));
    }

    [Fact]
    public void FindDotnet_FindsTheSdkMuxer()
    {
        string? dotnet = BuildCommand.FindDotnet();
        Assert.NotNull(dotnet);
        Assert.True(File.Exists(dotnet));
    }
}
