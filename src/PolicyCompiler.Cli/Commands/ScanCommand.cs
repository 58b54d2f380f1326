using System.CommandLine;
using System.Globalization;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Scanning.Discovery;
using PolicyCompiler.Scanning.Generation;
using PolicyCompiler.Scanning.Reporting;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc scan -o POLICY.json [options] -- COMMAND [ARGS...]</c> or
/// <c>policyc scan -o POLICY.json --upstream URL [--header 'K: V']...</c>: lists an MCP server's tools,
/// classifies each as read, write or destructive, and writes a starter policy (docs/scan.md). The
/// summary goes to stderr. Exit codes: 0 written; 1 not written (the file exists without
/// <c>--force</c>, cannot be written, or bad options); 2 the server could not be scanned (did not
/// start, does not speak MCP, lists no tools, timed out).
/// </summary>
public static class ScanCommand
{
    /// <summary>Exit code when the policy was written.</summary>
    public const int Written = 0;

    /// <summary>Exit code when the policy was not written (existing file, unwritable path, bad options).</summary>
    public const int NotWritten = 1;

    /// <summary>Exit code when the server could not be scanned.</summary>
    public const int ScanFailed = 2;

    /// <summary>Creates the <c>scan</c> command.</summary>
    public static Command Create()
    {
        var output = new Option<string>("--output", "-o") { Description = "Where to write the policy (JSON).", Required = true };
        var force = new Option<bool>("--force") { Description = "Overwrite the output file if it exists." };
        var upstream = new Option<string?>("--upstream") { Description = "Scan the MCP server at this Streamable HTTP (or SSE) URL instead of starting COMMAND." };
        var headers = new Option<string[]>("--header") { Description = "A header for --upstream requests, 'Name: value' (repeatable).", Arity = ArgumentArity.ZeroOrMore };
        var timeout = new Option<double>("--timeout")
        {
            Description = "Seconds that starting, initializing and listing may take together (default 30).",
            DefaultValueFactory = _ => 30.0,
        };
        var writeLimit = new Option<string>("--write-limit")
        {
            Description = "Rate limit of each write tool, per grant: MAX/WINDOW with WINDOW second, minute, hour, day or seconds (default 30/minute).",
            DefaultValueFactory = _ => "30/minute",
        };
        var pin = new Option<bool>("--pin") { Description = "Pin each tool's definition (SHA-256 of name, description, input schema): the gateway denies a tool whose definition changed." };
        var commandLine = new Argument<string[]>("command")
        {
            Description = "The MCP server's command line (after --).",
            Arity = ArgumentArity.ZeroOrMore,
        };

        var command = new Command("scan", "List an MCP server's tools and write a starter policy: policyc scan -o POLICY.json -- COMMAND [ARGS...] | --upstream URL.");
        command.Options.Add(output);
        command.Options.Add(force);
        command.Options.Add(upstream);
        command.Options.Add(headers);
        command.Options.Add(timeout);
        command.Options.Add(writeLimit);
        command.Options.Add(pin);
        command.Arguments.Add(commandLine);
        timeout.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<double>() is not (> 0 and <= 3600))
            {
                result.AddError("--timeout must be more than 0 and at most 3600 seconds.");
            }
        });
        command.Validators.Add(result =>
        {
            bool hasCommand = result.GetValue(commandLine) is { Length: > 0 };
            bool hasUpstream = result.GetValue(upstream) is not null;
            if (hasCommand == hasUpstream)
            {
                result.AddError("Give exactly one server: -- COMMAND [ARGS...] or --upstream URL.");
            }
            if (!hasUpstream && result.GetValue(headers) is { Length: > 0 })
            {
                result.AddError("--header applies only to --upstream.");
            }
        });

        command.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter error = parse.InvocationConfiguration.Error;
            var request = new ScanRequest(
                parse.GetRequiredValue(output),
                parse.GetValue(force),
                parse.GetValue(upstream),
                parse.GetValue(headers) ?? [],
                parse.GetValue(commandLine) ?? [],
                TimeSpan.FromSeconds(parse.GetValue(timeout)),
                parse.GetRequiredValue(writeLimit),
                parse.GetValue(pin));
            bool colour = ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected &&
                string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NO_COLOR"));
            return await RunAsync(request, error, colour, TimeProvider.System, cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>A parsed <c>scan</c> command line.</summary>
    internal sealed record ScanRequest(
        string Output,
        bool Force,
        string? Upstream,
        IReadOnlyList<string> Headers,
        IReadOnlyList<string> CommandLine,
        TimeSpan Timeout,
        string WriteLimit,
        bool Pin);

    /// <summary>Scans, prints the summary to <paramref name="error"/>, writes the policy; returns the exit code.</summary>
    internal static async Task<int> RunAsync(ScanRequest request, TextWriter error, bool colour, TimeProvider time, CancellationToken cancellationToken)
    {
        WriteLimit? limit = WriteLimit.TryParse(request.WriteLimit, out string? limitError);
        if (limit is null)
        {
            error.WriteLine("policyc scan: error: " + limitError);
            return NotWritten;
        }
        ScanTarget? target = Target(request, error);
        if (target is null)
        {
            return NotWritten;
        }
        // Fail before starting anything: a scan can take a while and must not end in "file exists".
        if (!request.Force && File.Exists(request.Output))
        {
            error.WriteLine($"policyc scan: error: {request.Output} exists; pass --force to overwrite it");
            return NotWritten;
        }

        ScanResult scan;
        try
        {
            scan = await ServerScanner.ScanAsync(target, request.Timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (ScanException e)
        {
            error.WriteLine($"policyc scan: error: cannot scan {target.Describe()}: {e.Message}");
            return ScanFailed;
        }

        StarterPolicy policy = StarterPolicyWriter.Create(scan, new StarterPolicyOptions(limit, request.Pin, time.GetUtcNow()));
        ScanSummary.Write(error, scan, policy, colour);

        // The generated file must be one `policyc check` accepts; anything else is a bug here, and is
        // reported rather than written.
        PolicyParseResult check = PolicyParser.Parse(request.Output, policy.Utf8);
        if (check.Policy is null)
        {
            foreach (PolicyDiagnostic diagnostic in check.Diagnostics)
            {
                error.WriteLine(diagnostic.ToString());
            }
            error.WriteLine("policyc scan: error: the generated policy does not validate (a bug in policyc scan); nothing was written");
            return NotWritten;
        }

        try
        {
            Write(request.Output, policy.Utf8, request.Force);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            string why = !request.Force && File.Exists(request.Output) ? $"{request.Output} exists; pass --force to overwrite it" : $"cannot write {request.Output}: {e.Message}";
            error.WriteLine("policyc scan: error: " + why);
            return NotWritten;
        }

        int pinned = policy.Tools.Count(t => t.Pin is not null);
        error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Wrote {request.Output}{(request.Pin ? $" ({pinned} tool definitions pinned)" : "")}. Check it with: policyc check {request.Output}"));
        return Written;
    }

    private static ScanTarget? Target(ScanRequest request, TextWriter error)
    {
        if (request.Upstream is null)
        {
            return new StdioScanTarget(request.CommandLine[0], [.. request.CommandLine.Skip(1)]);
        }
        if (!Uri.TryCreate(request.Upstream, UriKind.Absolute, out Uri? endpoint) || endpoint.Scheme is not ("http" or "https"))
        {
            error.WriteLine($"policyc scan: error: --upstream '{request.Upstream}' is not an http:// or https:// URL");
            return null;
        }
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (string header in request.Headers)
        {
            int colon = header.IndexOf(':', StringComparison.Ordinal);
            string name = colon > 0 ? header[..colon].Trim() : "";
            if (name.Length == 0 || name.Any(c => c <= ' ' || c >= 127))
            {
                error.WriteLine($"policyc scan: error: --header '{header}' is not 'Name: value'");
                return null;
            }
            headers[name] = header[(colon + 1)..].Trim();
        }
        return new HttpScanTarget(endpoint, headers);
    }

    /// <summary>
    /// Creates the file only if it is absent (one atomic check, no race with another writer), or with
    /// <c>--force</c> writes a sibling temporary file and renames it over the old one, so a reader never
    /// sees half a policy.
    /// </summary>
    private static void Write(string path, byte[] bytes, bool force)
    {
        if (!force)
        {
            using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            stream.Write(bytes);
            return;
        }
        string full = Path.GetFullPath(path);
        string temporary = Path.Combine(Path.GetDirectoryName(full)!, "." + Path.GetFileName(full) + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ".tmp");
        try
        {
            File.WriteAllBytes(temporary, bytes);
            File.Move(temporary, full, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
