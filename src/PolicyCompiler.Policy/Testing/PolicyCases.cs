using System.Globalization;
using System.Text;
using System.Text.Json;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Testing;

/// <summary>
/// A policy test file (<c>*.cases.json</c>, format in docs/policy-testing.md): cases, each a
/// sequence of calls with times and expected decisions, run against a fresh evaluator.
/// </summary>
/// <param name="Path">Where the file was read from (for messages).</param>
/// <param name="Cases">The cases, in file order.</param>
public sealed record PolicyCaseFile(string Path, IReadOnlyList<PolicyCase> Cases)
{
    /// <summary>The clock's start when a case gives none: a UTC midnight, so calendar windows start with the case.</summary>
    public static readonly DateTimeOffset DefaultStart = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Reads and checks a cases file; throws <see cref="PolicyCaseFormatException"/> on any mistake in it.</summary>
    public static PolicyCaseFile Load(string path) => Parse(path, File.ReadAllBytes(path));

    /// <summary>Parses cases from <paramref name="utf8"/> (read from <paramref name="path"/>).</summary>
    public static PolicyCaseFile Parse(string path, ReadOnlySpan<byte> utf8)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8.ToArray(), new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new PolicyCaseFormatException($"{path}: not valid JSON: {e.Message}");
        }
        using (document)
        {
            return new Reader(path).ReadFile(document.RootElement);
        }
    }

    /// <summary>Reads the cases file; checks fields strictly, because a typo in a test must not silently test nothing.</summary>
    private sealed class Reader(string path)
    {
        private static readonly string[] FileFields = ["$schema", "description", "defaults", "cases"];
        private static readonly string[] DefaultsFields = ["grant", "session", "start"];
        private static readonly string[] CaseFields = ["name", "tool", "args", "args_raw", "grant", "session", "start", "expect", "listed", "approved", "calls"];
        private static readonly string[] CallFields = ["tool", "args", "args_raw", "grant", "session", "at", "repeat", "every", "expect", "listed", "approved", "rollback"];
        private static readonly string[] ExpectFields = ["decision", "rule", "reason", "counter", "retry_after"];

        private string _grant = "agent";
        private string _session = "session-1";
        private DateTimeOffset _start = DefaultStart;

        public PolicyCaseFile ReadFile(JsonElement root)
        {
            RequireObject(root, "");
            CheckFields(root, FileFields, "");
            if (root.TryGetProperty("defaults", out var defaults))
            {
                RequireObject(defaults, "/defaults");
                CheckFields(defaults, DefaultsFields, "/defaults");
                _grant = OptionalString(defaults, "grant", "/defaults") ?? _grant;
                _session = OptionalString(defaults, "session", "/defaults") ?? _session;
                _start = OptionalTime(defaults, "/defaults") ?? _start;
            }
            if (!root.TryGetProperty("cases", out var cases) || cases.ValueKind != JsonValueKind.Array)
            {
                throw Error("", "'cases' must be an array of cases");
            }
            var list = new List<PolicyCase>();
            int i = 0;
            foreach (var item in cases.EnumerateArray()) list.Add(ReadCase(item, $"/cases/{i++}"));
            return new PolicyCaseFile(path, list);
        }

        private PolicyCase ReadCase(JsonElement node, string pointer)
        {
            RequireObject(node, pointer);
            CheckFields(node, CaseFields, pointer);
            string name = OptionalString(node, "name", pointer) ?? pointer;
            string? tool = OptionalString(node, "tool", pointer);
            string? args = ReadArgs(node, pointer);
            string grant = OptionalString(node, "grant", pointer) ?? _grant;
            string session = OptionalString(node, "session", pointer) ?? _session;
            DateTimeOffset start = OptionalTime(node, pointer) ?? _start;
            var calls = new List<PolicyCaseCall>();

            if (node.TryGetProperty("calls", out var steps))
            {
                if (steps.ValueKind != JsonValueKind.Array || steps.GetArrayLength() == 0) throw Error(pointer + "/calls", "must be a non-empty array of calls");
                foreach (var field in new[] { "expect", "listed", "approved" })
                {
                    if (node.TryGetProperty(field, out _)) throw Error(pointer + "/" + field, "belongs in each of 'calls' when the case has calls");
                }
                double at = 0;
                int i = 0;
                foreach (var step in steps.EnumerateArray())
                {
                    string stepPointer = $"{pointer}/calls/{i++}";
                    RequireObject(step, stepPointer);
                    CheckFields(step, CallFields, stepPointer);
                    double stepAt = OptionalNumber(step, "at", stepPointer) ?? at;
                    if (stepAt < at) throw Error(stepPointer + "/at", "times must not go backwards");
                    int repeat = (int)(OptionalNumber(step, "repeat", stepPointer) ?? 1);
                    double every = OptionalNumber(step, "every", stepPointer) ?? 0;
                    if (repeat < 1 || every < 0) throw Error(stepPointer, "'repeat' must be at least 1 and 'every' not negative");
                    string stepTool = OptionalString(step, "tool", stepPointer) ?? tool ?? throw Error(stepPointer, "no 'tool' (give one here or on the case)");
                    calls.Add(new PolicyCaseCall(
                        stepPointer,
                        stepTool,
                        step.TryGetProperty("args", out _) || step.TryGetProperty("args_raw", out _) ? ReadArgs(step, stepPointer) : args,
                        OptionalString(step, "grant", stepPointer) ?? grant,
                        OptionalString(step, "session", stepPointer) ?? session,
                        stepAt,
                        repeat,
                        every,
                        ReadExpect(step, stepPointer),
                        OptionalBool(step, "listed", stepPointer),
                        OptionalBool(step, "approved", stepPointer) ?? false,
                        OptionalBool(step, "rollback", stepPointer) ?? false));
                    at = stepAt + (repeat - 1) * every;
                }
            }
            else
            {
                if (tool is null) throw Error(pointer, "a case needs 'tool' (or 'calls')");
                calls.Add(new PolicyCaseCall(pointer, tool, args, grant, session, 0, 1, 0,
                    ReadExpect(node, pointer), OptionalBool(node, "listed", pointer), OptionalBool(node, "approved", pointer) ?? false, false));
            }
            return new PolicyCase(name, pointer, start, calls);
        }

        private string? ReadArgs(JsonElement node, string pointer)
        {
            bool hasArgs = node.TryGetProperty("args", out var args);
            bool hasRaw = node.TryGetProperty("args_raw", out var raw);
            if (hasArgs && hasRaw) throw Error(pointer, "give 'args' or 'args_raw', not both");
            // The raw text is kept as written, so duplicated keys and escapes reach the evaluator as they would from an agent.
            if (hasArgs) return args.GetRawText();
            if (!hasRaw) return null;
            if (raw.ValueKind != JsonValueKind.String) throw Error(pointer + "/args_raw", "must be a string (the arguments' JSON text, valid or not)");
            return raw.GetString();
        }

        private PolicyExpectation? ReadExpect(JsonElement node, string pointer)
        {
            if (!node.TryGetProperty("expect", out var expect)) return null;
            pointer += "/expect";
            if (expect.ValueKind == JsonValueKind.String) return new PolicyExpectation(ReadDecision(expect, pointer), null, null, null, null);
            RequireObject(expect, pointer);
            CheckFields(expect, ExpectFields, pointer);
            if (!expect.TryGetProperty("decision", out var decision)) throw Error(pointer, "needs 'decision'");
            TimeSpan? retryAfter = null;
            if (expect.TryGetProperty("retry_after", out var retry))
            {
                retryAfter = retry.ValueKind switch
                {
                    JsonValueKind.Number => TimeSpan.FromSeconds(retry.GetDouble()),
                    JsonValueKind.String when retry.GetString() == "never" => TimeSpan.MaxValue,
                    _ => throw Error(pointer + "/retry_after", "must be a number of seconds or \"never\""),
                };
            }
            return new PolicyExpectation(
                ReadDecision(decision, pointer + "/decision"),
                OptionalString(expect, "rule", pointer),
                OptionalString(expect, "reason", pointer),
                OptionalString(expect, "counter", pointer),
                retryAfter);
        }

        private DecisionKind ReadDecision(JsonElement value, string pointer) => value.ValueKind == JsonValueKind.String
            ? value.GetString() switch
            {
                "allow" => DecisionKind.Allow,
                "deny" => DecisionKind.Deny,
                "rate_limited" => DecisionKind.RateLimited,
                "approval_required" => DecisionKind.ApprovalRequired,
                var other => throw Error(pointer, $"unknown decision '{other}' (allow, deny, rate_limited, approval_required)"),
            }
            : throw Error(pointer, "must be allow, deny, rate_limited or approval_required");

        private DateTimeOffset? OptionalTime(JsonElement node, string pointer)
        {
            string? text = OptionalString(node, "start", pointer);
            if (text is null) return null;
            if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var start))
            {
                throw Error(pointer + "/start", $"'{text}' is not a date and time (e.g. 2026-01-01T00:00:30Z)");
            }
            return start;
        }

        private string? OptionalString(JsonElement node, string name, string pointer)
        {
            if (!node.TryGetProperty(name, out var value)) return null;
            return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Error(pointer + "/" + name, "must be a string");
        }

        private double? OptionalNumber(JsonElement node, string name, string pointer)
        {
            if (!node.TryGetProperty(name, out var value)) return null;
            return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw Error(pointer + "/" + name, "must be a number");
        }

        private bool? OptionalBool(JsonElement node, string name, string pointer)
        {
            if (!node.TryGetProperty(name, out var value)) return null;
            return value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : throw Error(pointer + "/" + name, "must be true or false");
        }

        private void RequireObject(JsonElement node, string pointer)
        {
            if (node.ValueKind != JsonValueKind.Object) throw Error(pointer, "must be an object");
        }

        private void CheckFields(JsonElement node, string[] allowed, string pointer)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in node.EnumerateObject())
            {
                if (Array.IndexOf(allowed, property.Name) < 0)
                {
                    throw Error(pointer, $"unknown field '{property.Name}' (expected one of: {string.Join(", ", allowed)})");
                }
                if (!seen.Add(property.Name)) throw Error(pointer, $"field '{property.Name}' appears twice");
            }
        }

        private PolicyCaseFormatException Error(string pointer, string message) =>
            new($"{path}: {(pointer.Length == 0 ? "" : pointer + ": ")}{message}");
    }
}

/// <summary>One test case: calls made, in order, against a fresh evaluator (fresh counters, clock at <see cref="Start"/>).</summary>
/// <param name="Name">What the case checks.</param>
/// <param name="Pointer">JSON pointer of the case in its file.</param>
/// <param name="Start">The clock's time at <c>at: 0</c>.</param>
/// <param name="Calls">The calls.</param>
public sealed record PolicyCase(string Name, string Pointer, DateTimeOffset Start, IReadOnlyList<PolicyCaseCall> Calls);

/// <summary>A call (or a run of identical calls) of a case.</summary>
/// <param name="Pointer">JSON pointer of the call in its file.</param>
/// <param name="Tool">The tool name.</param>
/// <param name="ArgumentsJson">The arguments' JSON text, or null for none.</param>
/// <param name="Grant">The caller's grant.</param>
/// <param name="Session">The session id.</param>
/// <param name="At">Seconds after the case's start of the first call.</param>
/// <param name="Repeat">How many times the call is made.</param>
/// <param name="Every">Seconds between repetitions.</param>
/// <param name="Expect">The expected decision of every repetition (null: only made, not checked).</param>
/// <param name="Listed">The expected <see cref="IPolicyEvaluator.IsListed"/> of the tool, when given.</param>
/// <param name="Approved">Whether a human approved the call: it goes through <see cref="IPolicyEvaluator.ReserveLimits"/>.</param>
/// <param name="Rollback">Whether the reservation is rolled back (the call was not made) rather than committed.</param>
public sealed record PolicyCaseCall(
    string Pointer,
    string Tool,
    string? ArgumentsJson,
    string Grant,
    string Session,
    double At,
    int Repeat,
    double Every,
    PolicyExpectation? Expect,
    bool? Listed,
    bool Approved,
    bool Rollback);

/// <summary>What a call must decide; null parts are not checked.</summary>
/// <param name="Decision">The decision kind.</param>
/// <param name="Rule">The deciding rule's JSON pointer.</param>
/// <param name="Reason">The reason text.</param>
/// <param name="Counter">The refusing counter (rate_limited).</param>
/// <param name="RetryAfter">The time until a slot frees (rate_limited); <see cref="TimeSpan.MaxValue"/> for never.</param>
public sealed record PolicyExpectation(DecisionKind Decision, string? Rule, string? Reason, string? Counter, TimeSpan? RetryAfter);

/// <summary>A mistake in a cases file (not a failing case).</summary>
public sealed class PolicyCaseFormatException(string message) : Exception(message);
