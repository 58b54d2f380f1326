using System.Reflection;

namespace PolicyCompiler.EndToEnd.Tests.Infrastructure;

/// <summary>Paths inside the repository and the test output.</summary>
internal static class Repo
{
    /// <summary>The repository root (the directory holding PolicyCompiler.sln).</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The build configuration the tests were built with (Debug/Release).</summary>
    public static string Configuration { get; } =
        typeof(Repo).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;

    /// <summary>The EKS-like sample server's entry assembly.</summary>
    public static string EksLikeServerDll =>
        Path.Combine(Root, "tests", "Servers", "EksLikeServer", "bin", Configuration, "net10.0", "EksLikeServer.dll");

    /// <summary>An npm-installed server's launcher (tests/servers-npm/node_modules/.bin).</summary>
    public static string NpmBin(string name)
    {
        var path = Path.Combine(Root, "tests", "servers-npm", "node_modules", ".bin", name);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException(
                $"{path} is missing: run `npm ci` in tests/servers-npm (scripts/test.sh does it).");
        }
        return path;
    }

    /// <summary>A test policy copied to the output directory.</summary>
    public static string TestPolicy(string fileName) => Path.Combine(AppContext.BaseDirectory, "Policies", fileName);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PolicyCompiler.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException("PolicyCompiler.sln not found above " + AppContext.BaseDirectory);
    }
}
