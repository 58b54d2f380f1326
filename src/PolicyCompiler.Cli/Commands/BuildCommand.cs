using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc build POLICY.json -o OUTPUT [--rid linux-x64] [--source DIR]</c>: compiles the policy into
/// one self-contained native gateway (docs/gateway.md). Validates the policy first (diagnostics as
/// <c>file(line,col): error PC...</c>), then runs
/// <c>dotnet publish src/PolicyCompiler.Gateway.Host -c Release -r RID -p:PublishAot=true -p:PolicyFile=ABS</c>,
/// streaming its progress to stderr, refuses any trim/AOT warning, copies the executable to OUTPUT and
/// prints its path, size and the policy's SHA-256. Exit codes: 0 built, 1 invalid policy or failed build.
/// </summary>
public static partial class BuildCommand
{
    /// <summary>The environment variable naming the PolicyCompiler source tree (else <c>--source</c>, else found from policyc's location).</summary>
    public const string SourceEnvironmentVariable = "POLICYCOMPILER_SOURCE";

    private const string HostProject = "src/PolicyCompiler.Gateway.Host/PolicyCompiler.Gateway.Host.csproj";
    private const string HostExecutable = "PolicyCompiler.Gateway.Host";

    /// <summary>Creates the <c>build</c> command.</summary>
    public static Command Create()
    {
        var policyFile = new Argument<string>("POLICY") { Description = "The policy file (JSON)." };
        var output = new Option<string>("--output", "-o") { Description = "Where to write the gateway executable (a file, or a directory to put <policy name> in).", Required = true };
        var rid = new Option<string>("--rid", "-r") { Description = "The target runtime identifier.", DefaultValueFactory = _ => "linux-x64" };
        var source = new Option<string?>("--source") { Description = $"The PolicyCompiler source tree (default: ${SourceEnvironmentVariable}, else found from policyc's location)." };
        var command = new Command("build", "Compile a policy into a single native gateway executable (Native AOT).");
        command.Arguments.Add(policyFile);
        command.Options.Add(output);
        command.Options.Add(rid);
        command.Options.Add(source);
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetRequiredValue(policyFile),
            parse.GetRequiredValue(output),
            parse.GetValue(rid) ?? "linux-x64",
            parse.GetValue(source),
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error,
            cancellationToken));
        return command;
    }

    /// <summary>Builds the gateway; progress and diagnostics to <paramref name="error"/>, the summary to <paramref name="output"/>.</summary>
    public static async Task<int> RunAsync(string policyFile, string outputPath, string rid, string? source, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        PolicyDocument? policy = RunCommand.Load(policyFile, error);
        if (policy is null)
        {
            error.WriteLine($"policyc build: {policyFile} is invalid; nothing was built.");
            return 1;
        }

        string? root = FindSourceRoot(source);
        if (root is null)
        {
            error.WriteLine($"policyc build: cannot find the PolicyCompiler source tree; pass --source DIR or set ${SourceEnvironmentVariable}.");
            return 1;
        }

        string publishDirectory = Path.Combine(Path.GetTempPath(), "policyc-build-" + Guid.NewGuid().ToString("N"));
        try
        {
            var startInfo = new ProcessStartInfo("dotnet")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = root,
            };
            foreach (string argument in new[]
            {
                "publish", Path.Combine(root, HostProject), "-c", "Release", "-r", rid, "-nologo", "-v:minimal",
                "-p:PublishAot=true", "-p:PolicyFile=" + Path.GetFullPath(policyFile), "-o", publishDirectory,
            })
            {
                startInfo.ArgumentList.Add(argument);
            }

            error.WriteLine($"policyc build: compiling policy {policy.Name} ({policy.Sha256}) for {rid}...");
            using Process publish = Process.Start(startInfo)!;
            int aotWarnings = 0;
            var lines = new List<string>();
            async Task PumpAsync(StreamReader reader)
            {
                while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
                {
                    lock (lines)
                    {
                        lines.Add(line);
                        if (TrimOrAotWarning().IsMatch(line))
                        {
                            aotWarnings++;
                        }

                        error.WriteLine("  " + line);
                    }
                }
            }

            await Task.WhenAll(PumpAsync(publish.StandardOutput), PumpAsync(publish.StandardError)).ConfigureAwait(false);
            await publish.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (publish.ExitCode != 0)
            {
                error.WriteLine($"policyc build: dotnet publish failed (exit {publish.ExitCode}); see the errors above.");
                return 1;
            }

            if (aotWarnings > 0)
            {
                error.WriteLine($"policyc build: the publish reported {aotWarnings} trim/AOT warning(s); a gateway must build without any.");
                return 1;
            }

            string built = Path.Combine(publishDirectory, OperatingSystem.IsWindows() ? HostExecutable + ".exe" : HostExecutable);
            string destination = Directory.Exists(outputPath) ? Path.Combine(outputPath, policy.Name) : Path.GetFullPath(outputPath);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(built, destination, overwrite: true);
            long size = new FileInfo(destination).Length;
            output.WriteLine(destination);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  size    {size} bytes ({size / (1024.0 * 1024.0):0.0} MiB)"));
            output.WriteLine($"  policy  {policy.Name}, sha256 {policy.Sha256}");
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(publishDirectory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>The source tree: <paramref name="explicitRoot"/>, the environment variable, or the nearest ancestor of policyc holding the host project.</summary>
    internal static string? FindSourceRoot(string? explicitRoot)
    {
        string? candidate = explicitRoot ?? Environment.GetEnvironmentVariable(SourceEnvironmentVariable);
        if (!string.IsNullOrEmpty(candidate))
        {
            return File.Exists(Path.Combine(candidate, HostProject)) ? Path.GetFullPath(candidate) : null;
        }

        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, HostProject)))
            {
                return directory.FullName;
            }
        }

        return null;
    }

    // ILLink (IL2xxx) and ILCompiler (IL3xxx) warnings: any of them means the binary may misbehave.
    [GeneratedRegex(@"warning IL[23]\d{3}")]
    private static partial Regex TrimOrAotWarning();
}
