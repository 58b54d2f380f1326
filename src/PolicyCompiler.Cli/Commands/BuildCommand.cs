using System.CommandLine;
using System.ComponentModel;
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
/// prints its path, size and the policy's SHA-256. Each build uses a locked slot of a build cache as its
/// <c>--artifacts-path</c>, so concurrent builds from one source tree do not collide and repeat builds stay
/// incremental. Exit codes: 0 built, 1 invalid policy, missing SDK or source tree, or failed build.
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

        string? root = FindSourceRoot(source, out string? sourceProblem);
        if (root is null)
        {
            error.WriteLine($"policyc build: {sourceProblem}");
            return 1;
        }

        string? dotnet = FindDotnet();
        if (dotnet is null)
        {
            error.WriteLine("policyc build: cannot find the 'dotnet' command (the .NET SDK); install the .NET 10 SDK and put it on PATH, or set DOTNET_HOST_PATH.");
            return 1;
        }

        // One build slot per concurrent build: its own artifacts path (every project's obj/ and bin/), locked
        // while in use, so two builds never write the same files; a repeat build reuses slot 0 and stays incremental.
        using BuildSlot slot = BuildSlot.Acquire(root, rid);
        string publishDirectory = Path.Combine(Path.GetTempPath(), "policyc-build-" + Guid.NewGuid().ToString("N"));
        try
        {
            var startInfo = new ProcessStartInfo(dotnet)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = root,
            };
            foreach (string argument in new[]
            {
                "publish", Path.Combine(root, HostProject), "-c", "Release", "-r", rid, "-nologo", "-v:minimal",
                "--artifacts-path", slot.ArtifactsPath,
                "-p:PublishAot=true", "-p:PolicyFile=" + Path.GetFullPath(policyFile), "-o", publishDirectory,
            })
            {
                startInfo.ArgumentList.Add(argument);
            }

            error.WriteLine($"policyc build: compiling policy {policy.Name} ({policy.Sha256}) for {rid}...");
            Process publish;
            try
            {
                publish = Process.Start(startInfo)!;
            }
            catch (Win32Exception e)
            {
                error.WriteLine($"policyc build: cannot run '{dotnet}' (the .NET SDK): {e.Message}");
                return 1;
            }

            using Process started = publish;
            int aotWarnings = 0;
            bool noSdk = false;
            async Task PumpAsync(StreamReader reader)
            {
                while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
                {
                    lock (error)
                    {
                        if (TrimOrAotWarning().IsMatch(line))
                        {
                            aotWarnings++;
                        }

                        noSdk |= line.Contains("No .NET SDKs were found", StringComparison.Ordinal) ||
                                 line.Contains("A compatible .NET SDK was not found", StringComparison.Ordinal);
                        error.WriteLine("  " + line);
                    }
                }
            }

            await Task.WhenAll(PumpAsync(publish.StandardOutput), PumpAsync(publish.StandardError)).ConfigureAwait(false);
            await publish.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (publish.ExitCode != 0)
            {
                error.WriteLine(noSdk
                    ? $"policyc build: '{dotnet}' has no suitable .NET SDK (see {Path.Combine(root, "global.json")}); install the .NET 10 SDK."
                    : $"policyc build: dotnet publish failed (exit {publish.ExitCode}); see the errors above.");
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

            // Copy then rename: a concurrent build writing the same OUTPUT never leaves a half-written executable.
            string partial = destination + ".partial-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            File.Copy(built, partial, overwrite: true);
            File.Move(partial, destination, overwrite: true);
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

    /// <summary>The <c>dotnet</c> muxer: the one running policyc, else <c>$DOTNET_HOST_PATH</c>, else the first on PATH.</summary>
    internal static string? FindDotnet()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        string executable = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>The source tree: <paramref name="explicitRoot"/>, the environment variable, or the nearest ancestor of policyc holding the host project.</summary>
    internal static string? FindSourceRoot(string? explicitRoot, out string? problem)
    {
        problem = null;
        string? candidate = explicitRoot;
        string origin = "--source";
        if (string.IsNullOrEmpty(candidate))
        {
            candidate = Environment.GetEnvironmentVariable(SourceEnvironmentVariable);
            origin = "$" + SourceEnvironmentVariable;
        }

        if (!string.IsNullOrEmpty(candidate))
        {
            if (File.Exists(Path.Combine(candidate, HostProject)))
            {
                return Path.GetFullPath(candidate);
            }

            problem = Directory.Exists(candidate)
                ? $"{origin} {candidate} is not a PolicyCompiler source tree (no {HostProject} in it)."
                : $"{origin} {candidate} does not exist.";
            return null;
        }

        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, HostProject)))
            {
                return directory.FullName;
            }
        }

        problem = $"cannot find the PolicyCompiler source tree above {AppContext.BaseDirectory}; pass --source DIR or set ${SourceEnvironmentVariable}.";
        return null;
    }

    /// <summary>
    /// A locked build directory under the cache (<c>$POLICYCOMPILER_BUILD_CACHE</c>, else <c>$XDG_CACHE_HOME/policycompiler/build</c>,
    /// else <c>~/.cache/policycompiler/build</c>), keyed by source tree and RID: <c>KEY-RID/slot-N</c>. The first free
    /// slot is taken, so sequential builds reuse slot 0 (incremental) and concurrent ones get their own.
    /// </summary>
    internal sealed class BuildSlot : IDisposable
    {
        /// <summary>The environment variable that overrides the cache directory.</summary>
        public const string CacheEnvironmentVariable = "POLICYCOMPILER_BUILD_CACHE";

        private const int Slots = 8;
        private readonly FileStream _lock;

        private BuildSlot(string artifactsPath, FileStream lockFile)
        {
            ArtifactsPath = artifactsPath;
            _lock = lockFile;
        }

        /// <summary>The <c>--artifacts-path</c> of this build.</summary>
        public string ArtifactsPath { get; }

        /// <summary>Takes the first free slot for <paramref name="sourceRoot"/> and <paramref name="rid"/>, waiting while all are busy.</summary>
        public static BuildSlot Acquire(string sourceRoot, string rid, string? cacheRoot = null)
        {
            string key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Path.GetFullPath(sourceRoot))))[..12];
            string directory = Path.Combine(cacheRoot ?? CacheRoot(), key + "-" + rid);
            Directory.CreateDirectory(directory);
            while (true)
            {
                for (int i = 0; i < Slots; i++)
                {
                    string slot = Path.Combine(directory, "slot-" + i.ToString(CultureInfo.InvariantCulture));
                    try
                    {
                        // FileShare.None is an exclusive advisory lock (flock) on Unix: released when the process ends, even if killed.
                        var lockFile = new FileStream(slot + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                        return new BuildSlot(slot, lockFile);
                    }
                    catch (IOException)
                    {
                        // Busy: another build holds it.
                    }
                }

                Thread.Sleep(500);
            }
        }

        internal static string CacheRoot()
        {
            if (Environment.GetEnvironmentVariable(CacheEnvironmentVariable) is { Length: > 0 } explicitRoot)
            {
                return explicitRoot;
            }

            string? cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (string.IsNullOrEmpty(cache))
            {
                string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
                cache = string.IsNullOrEmpty(home) ? Path.GetTempPath() : Path.Combine(home, ".cache");
            }

            return Path.Combine(cache, "policycompiler", "build");
        }

        public void Dispose() => _lock.Dispose();
    }

    // ILLink (IL2xxx) and ILCompiler (IL3xxx) warnings: any of them means the binary may misbehave.
    [GeneratedRegex(@"warning IL[23]\d{3}")]
    private static partial Regex TrimOrAotWarning();
}
