namespace PolicyCompiler.Generators.Tests.TestHelpers;

/// <summary>
/// Checked-in generated output under Baselines/. A change to the emitter shows up as a diff of
/// these files in review; set POLICYCOMPILER_UPDATE_BASELINES=1 to rewrite them.
/// </summary>
internal static class Baseline
{
    public static string Directory([System.Runtime.CompilerServices.CallerFilePath] string thisFile = "") =>
        Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(thisFile)!)!, "Baselines");

    public static void Verify(string fileName, string actual)
    {
        string path = Path.Combine(Directory(), fileName);
        if (Environment.GetEnvironmentVariable("POLICYCOMPILER_UPDATE_BASELINES") == "1")
        {
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, actual);
            return;
        }

        Assert.True(File.Exists(path), $"missing baseline {path}; run with POLICYCOMPILER_UPDATE_BASELINES=1 to create it");
        string expected = File.ReadAllText(path).ReplaceLineEndings("\n");
        Assert.Equal(expected, actual);
    }
}
