using PolicyCompiler.Cli;

namespace PolicyCompiler.Cli.Tests;

public sealed class CheckCommandTests() : CliTest("policyc-check-")
{
    [Fact]
    public void Check_PolicyWithATypo_PrintsFileLineColumn_AndExits1()
    {
        string path = Write("typo.json", """
            {
              "version": "1",
              "tools": {
                "CreateCodeConnection": {
                  "limits": [ { "counter": "c", "window": "minute", "max": 30, "scpoe": "grant" } ]
                }
              }
            }
            """);

        var (exit, output, error) = Invoke("check", path);

        Assert.Equal(1, exit);
        Assert.Equal($"{path}(5,68): error PC0004: unknown field 'scpoe' in a limit; did you mean 'scope'?", error.Trim());
        Assert.Equal("1 file checked: 0 valid, 1 invalid; 1 error, 0 warnings", output.Trim());
    }

    [Fact]
    public void Check_ShippedPolicies_AreValid_Exit0()
    {
        var files = Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "policies"), "*.json")
            .Where(f => !f.EndsWith(".cases.json", StringComparison.Ordinal) && !f.EndsWith(".schema.json", StringComparison.Ordinal))
            .ToArray();
        Assert.Contains(files, f => f.EndsWith("seed.json", StringComparison.Ordinal));

        var (exit, output, error) = Invoke(["check", .. files]);

        Assert.True(exit == 0, error);
        Assert.Equal("", error);
        Assert.StartsWith($"{files.Length} files checked: {files.Length} valid, 0 invalid; 0 errors, 0 warnings", output);
    }

    [Fact]
    public void Check_WarningsOnly_Exit0_AndPrintsTheWarning()
    {
        string path = Write("warn.json", """{ "version": "1", "tools": { "a b": {} } }""");

        var (exit, output, error) = Invoke("check", path);

        Assert.Equal(0, exit);
        Assert.StartsWith($"{path}(1,30): warning PC0103:", error);
        Assert.Contains("1 valid, 0 invalid; 0 errors, 1 warning", output);
    }

    [Fact]
    public void Check_MissingFile_Exit2_WithAClearMessage()
    {
        string valid = Write("ok.json", """{ "version": "1" }""");
        string missing = Path.Combine(TempDirectory, "missing.json");

        var (exit, output, error) = Invoke("check", valid, missing);

        Assert.Equal(2, exit);
        Assert.StartsWith($"{missing}: error: cannot read the file:", error);
        Assert.Contains("2 files checked: 1 valid, 0 invalid, 1 unreadable", output);
    }

    [Fact]
    public void Check_WithoutFiles_IsAUsageError()
    {
        var (exit, _, error) = Invoke("check");
        Assert.NotEqual(0, exit);
        Assert.NotEqual("", error);
    }
}
