using System.CommandLine;
using System.Globalization;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc check FILE...</c>: validates policy files with the same parser and validator the
/// source generator runs. Every error and warning goes to stderr as
/// <c>file(line,col): error PC0001: message</c> (the form editors and CI parse), then one summary
/// line to stdout. Exit codes: 0 all valid, 1 any invalid, 2 a file could not be read.
/// </summary>
public static class CheckCommand
{
    /// <summary>Exit code when every file is valid (warnings allowed).</summary>
    public const int Valid = 0;

    /// <summary>Exit code when any file has an error.</summary>
    public const int Invalid = 1;

    /// <summary>Exit code when any file cannot be read.</summary>
    public const int Unreadable = 2;

    /// <summary>Creates the <c>check</c> command.</summary>
    public static Command Create()
    {
        var files = new Argument<string[]>("FILE")
        {
            Description = "Policy files to check",
            Arity = ArgumentArity.OneOrMore,
        };
        var command = new Command("check", "Validate policy files; print errors and warnings as file(line,col): error PC0001: message. Exit 0 valid, 1 invalid, 2 unreadable.");
        command.Arguments.Add(files);
        command.SetAction(parse => Run(parse.GetRequiredValue(files), parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
        return command;
    }

    /// <summary>Checks <paramref name="files"/>, writing diagnostics to <paramref name="error"/> and the summary to <paramref name="output"/>.</summary>
    public static int Run(IReadOnlyList<string> files, TextWriter output, TextWriter error)
    {
        int invalid = 0, unreadable = 0, errors = 0, warnings = 0;
        foreach (var file in files)
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                error.WriteLine($"{file}: error: cannot read the file: {e.Message}");
                unreadable++;
                continue;
            }

            var result = PolicyParser.Parse(file, bytes);
            foreach (var diagnostic in result.Diagnostics)
            {
                error.WriteLine(diagnostic.ToString());
                if (diagnostic.Severity == PolicyDiagnosticSeverity.Error) errors++;
                else warnings++;
            }
            if (result.Policy is null) invalid++;
        }

        int valid = files.Count - invalid - unreadable;
        output.WriteLine(string.Format(
            CultureInfo.InvariantCulture,
            "{0} checked: {1} valid, {2} invalid{3}; {4}, {5}",
            Plural(files.Count, "file"),
            valid,
            invalid,
            unreadable > 0 ? $", {unreadable} unreadable" : "",
            Plural(errors, "error"),
            Plural(warnings, "warning")));
        return unreadable > 0 ? Unreadable : invalid > 0 ? Invalid : Valid;
    }

    private static string Plural(int count, string noun) =>
        count.ToString(CultureInfo.InvariantCulture) + " " + noun + (count == 1 ? "" : "s");
}
