using System.CommandLine;

namespace PolicyCompiler.Cli.Tests;

/// <summary>
/// What the in-process <c>policyc</c> tests share: a temporary directory of their own, a way to write
/// files into it, and the root command invoked with captured output.
/// </summary>
public abstract class CliTest : IDisposable
{
    protected CliTest(string prefix) => TempDirectory = Directory.CreateTempSubdirectory(prefix).FullName;

    /// <summary>The test's own temporary directory, deleted afterwards.</summary>
    protected string TempDirectory { get; }

    public void Dispose()
    {
        Directory.Delete(TempDirectory, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Runs <c>policyc ARGS</c> in process; its exit code, stdout and stderr.</summary>
    protected static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = Program.CreateRootCommand().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="name"/> in the temporary directory; its path.</summary>
    protected string Write(string name, string text)
    {
        string path = Path.Combine(TempDirectory, name);
        File.WriteAllText(path, text);
        return path;
    }
}
