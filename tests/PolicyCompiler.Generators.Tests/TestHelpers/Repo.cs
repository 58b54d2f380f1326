namespace PolicyCompiler.Generators.Tests.TestHelpers;

/// <summary>Paths in the repository (the tests read the shipped policies).</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Policies => Path.Combine(Root, "policies");

    /// <summary>The shipped policies (not their test cases or schema), sorted.</summary>
    public static string[] PolicyFiles() => Directory.GetFiles(Policies, "*.json")
        .Where(p => !p.EndsWith(".cases.json", StringComparison.Ordinal) && !p.EndsWith(".schema.json", StringComparison.Ordinal))
        .OrderBy(p => p, StringComparer.Ordinal)
        .ToArray();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PolicyCompiler.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root not found");
    }
}
