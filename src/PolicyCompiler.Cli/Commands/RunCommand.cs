using System.CommandLine;
using PolicyCompiler.Gateway.Enforcement;
using PolicyCompiler.Gateway.Hosting;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Cli.Commands;

/// <summary>
/// <c>policyc run POLICY.json [options] -- COMMAND [ARGS...]</c>: the stdio gateway of a built binary
/// (same options, same behaviour, docs/gateway.md), deciding with the reference interpreter instead
/// of compiled code, for iterating on a policy. <c>--watch</c> reloads the file when it changes; the
/// counters carry over (one counter store for every reload), and an invalid edit keeps the previous
/// policy. Exit codes: the upstream's status, as the gateway's; 1 when the policy is invalid.
/// </summary>
public static class RunCommand
{
    /// <summary>Creates the <c>run</c> command.</summary>
    public static Command Create()
    {
        var policyFile = new Argument<string>("POLICY") { Description = "The policy file (JSON)." };
        var watch = new Option<bool>("--watch") { Description = "Reload the policy when the file changes, keeping counters." };
        var options = new StdioCommandOptions();
        var command = new Command("run", "Run the stdio gateway with the interpreter: policyc run POLICY.json [options] -- COMMAND [ARGS...].");
        command.Arguments.Add(policyFile);
        command.Options.Add(watch);
        options.AddTo(command);
        command.Subcommands.Add(RunHttpCommand.Create()); // policyc run http POLICY.json ... (docs/http.md)
        command.SetAction((parse, cancellationToken) => RunAsync(parse, parse.GetRequiredValue(policyFile), parse.GetValue(watch), options, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, string file, bool watch, StdioCommandOptions options, CancellationToken cancellationToken)
    {
        TextWriter error = parse.InvocationConfiguration.Error;
        PolicyDocument? policy = Load(file, error);
        if (policy is null)
        {
            return 1;
        }

        string path = Path.GetFullPath(file);
        ReloadableEvaluator? evaluator = null;
        PolicyEvaluatorOptions? shared = null;
        using FileSystemWatcher? watcher = watch ? new FileSystemWatcher(Path.GetDirectoryName(path)!, Path.GetFileName(path)) : null;
        if (watcher is not null)
        {
            var reload = new PolicyReloader(path, error, () => (evaluator, shared));
            watcher.NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.FileName | NotifyFilters.CreationTime;
            watcher.Changed += reload.OnChanged;
            watcher.Created += reload.OnChanged;
            watcher.Renamed += reload.OnChanged;
            watcher.EnableRaisingEvents = true;
        }

        return await options.RunAsync(
            parse,
            evaluatorOptions =>
            {
                shared = evaluatorOptions;
                evaluator = new ReloadableEvaluator(new PolicyInterpreter(policy, evaluatorOptions));
                return evaluator;
            },
            new PolicyInfo(policy.Name, policy.Sha256, policy.Mode, policy.SourceText),
            "policyc-run",
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads and validates the policy; prints every diagnostic; null when it has errors.</summary>
    internal static PolicyDocument? Load(string file, TextWriter error) => PolicyLoading.TryLoad(file, error, includeWarnings: true);

    /// <summary>Debounces file events (editors write in several steps) and swaps the policy in.</summary>
    private sealed class PolicyReloader(string path, TextWriter error, Func<(ReloadableEvaluator? Evaluator, PolicyEvaluatorOptions? Options)> target)
    {
        private readonly Lock _gate = new();
        private CancellationTokenSource? _pending;

        public void OnChanged(object sender, FileSystemEventArgs e)
        {
            CancellationTokenSource next = new();
            lock (_gate)
            {
                _pending?.Cancel();
                _pending = next;
            }

            _ = ReloadAfterQuietAsync(next.Token);
        }

        private async Task ReloadAfterQuietAsync(CancellationToken cancellationToken)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            (ReloadableEvaluator? evaluator, PolicyEvaluatorOptions? options) = target();
            if (evaluator is null || options is null)
            {
                return;
            }

            PolicyDocument? policy = Load(path, error);
            if (policy is null)
            {
                error.WriteLine($"policyc run: {path}: invalid, keeping policy {evaluator.Policy.Name} ({evaluator.Policy.Sha256})");
                return;
            }

            if (policy.Sha256 == evaluator.Policy.Sha256)
            {
                return;
            }

            evaluator.Replace(new PolicyInterpreter(policy, options));
            error.WriteLine($"policyc run: reloaded {path}: policy {policy.Name} ({policy.Sha256}); counters kept");
        }
    }
}
