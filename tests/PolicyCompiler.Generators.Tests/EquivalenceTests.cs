extern alias generator;

using System.Reflection;
using System.Text;
using CsCheck;
using Xunit.Abstractions;
using PolicyCompiler.Generators.Tests.TestHelpers;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Policy.Testing;
using Emitter = generator::PolicyCompiler.Generators.PolicyGenerator.Emitter;
using GeneratorParser = generator::PolicyCompiler.Policy.Language.PolicyParser;

namespace PolicyCompiler.Generators.Tests;

/// <summary>
/// THE correctness property: for random policies and random call sequences, the compiled evaluator
/// and the reference interpreter give identical decisions, rule pointers, reasons, counters and
/// retry-after times, and leave identical counter state (checked through every later decision).
/// Policies are generated as JSON, read by each side's own copy of the parser, compiled in batches
/// (one in-memory compilation per batch keeps the test fast) and run side by side on one clock.
/// </summary>
public class EquivalenceTests(ITestOutputHelper output)
{
    private const int PoliciesPerBatch = 40;
    private const int CallsPerPolicy = 60;

    // The tool keys policies use: exact names and the pattern shapes the emitter treats differently
    // (prefix, suffix, contains, prefix+suffix, '?', several '*', '**' matching every name). The '*'
    // layer is generated separately (GenLayer): it may not have an action, reason or hide.
    private static readonly string[] Keys =
    [
        "A", "Get", "GetItem", "Delete", "DeleteItem", "x.y",
        "Get*", "*Item", "*et*", "Del*m", "G?t*", "*e*e*", "?", "Get?tem", "**",
    ];

    // Tool names called: the exact keys, names only patterns match, and names nothing matches.
    private static readonly string[] Tools =
    [
        "A", "Get", "GetItem", "Delete", "DeleteItem", "x.y", "Gat", "GotItem", "Item", "Deem", "Delm",
        "B", "", "Getter", "eee", "caf\u00e9", "Get\u00e9tem", "*",
    ];

    private static readonly string[] Paths = ["args.a", "args.n", "args.items[0]", "args[\"x.y\"]", "args", "args.o.k", "grant", "session", "tool"];

    private static readonly string[] Scalars = ["\"v1\"", "\"v2\"", "\"\"", "1", "2.5", "-3", "true", "false", "null", "\"v\\u0031\"", "\"G\"", "\"caf\\u00e9\""];

    private static readonly string[] ArgValues =
    [
        "\"v1\"", "\"v2\"", "\"\"", "1", "1.0", "2.5", "-3", "3", "\"3\"", "true", "null", "\"v\\u0031\"", "\"Get\"",
        "[\"v1\",2]", "[]", "{\"k\":1}", "\"caf\\u00e9\"", "\"\\ud800\"", "1e400",
        // Invalid UTF-8 in a string (U+E000 stands for the byte 0xFF, see ArgumentBytes): never equal to anything.
        "\"v1\uE000\"", "\"\uE000\"", "\"caf\u00e9\"",
    ];

    /// <summary>A call's arguments as bytes: UTF-8, except that U+E000 becomes the byte 0xFF (never valid UTF-8).</summary>
    private static byte[] ArgumentBytes(string args)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(args);
        var bytes = new List<byte>(utf8.Length);
        for (int i = 0; i < utf8.Length; i++)
        {
            if (i + 2 < utf8.Length && utf8[i] == 0xEE && utf8[i + 1] == 0x80 && utf8[i + 2] == 0x80)
            {
                bytes.Add(0xFF);
                i += 2;
            }
            else
            {
                bytes.Add(utf8[i]);
            }
        }

        return bytes.ToArray();
    }

    private static readonly Gen<string> GenScalar = Gen.OneOfConst(Scalars);

    private static Gen<string> GenTest() =>
        Gen.Select(Gen.OneOfConst(Paths), Gen.Int[0, 13], GenScalar, GenScalar.Array[0, 3], Gen.Int[-4, 4], Gen.Bool,
            (path, op, scalar, list, number, flag) =>
            {
                string body = op switch
                {
                    0 => $"\"eq\": {scalar}",
                    1 => $"\"neq\": {scalar}",
                    2 => $"\"in\": [{string.Join(",", list)}]",
                    3 => $"\"not_in\": [{string.Join(",", list)}]",
                    4 => $"\"lt\": {number}",
                    5 => $"\"lte\": {number}",
                    6 => $"\"gt\": {number}",
                    7 => $"\"gte\": {number}",
                    8 => $"\"prefix\": \"{(flag ? "v" : "Ge")}\"",
                    9 => $"\"suffix\": \"{(flag ? "1" : "em")}\"",
                    10 => $"\"contains\": {scalar}",
                    11 => $"\"regex\": \"{(flag ? "^v[0-9]$" : "e|1")}\"",
                    12 => $"\"glob\": \"{(flag ? "v*" : "?e*")}\"",
                    _ => $"\"exists\": {(flag ? "true" : "false")}",
                };
                return $"{{ \"{path.Replace("\"", "\\\"")}\": {{ {body} }} }}";
            });

    private static Gen<string> GenCondition(int depth) => depth == 0
        ? GenTest()
        : Gen.Frequency(
            (4, GenTest()),
            (1, GenCondition(depth - 1).Array[0, 3].Select(items => $"{{ \"all\": [{string.Join(",", items)}] }}")),
            (1, GenCondition(depth - 1).Array[0, 3].Select(items => $"{{ \"any\": [{string.Join(",", items)}] }}")),
            (1, GenCondition(depth - 1).Select(inner => $"{{ \"not\": {inner} }}")));

    private static readonly Gen<string> GenAction = Gen.OneOfConst("allow", "deny", "approve");

    private static readonly Gen<string> GenRule =
        Gen.Select(Gen.Frequency((1, Gen.Const((string?)null)), (4, GenCondition(2).Select(c => (string?)c))), GenAction, Gen.Bool,
            (when, action, reason) =>
                "{ " + (when is null ? "" : $"\"when\": {when}, ") + $"\"action\": \"{action}\"" + (reason ? $", \"reason\": \"rule says {action}\"" : "") + " }");

    // A counter's name is derived from its window, alignment, scope and key, so limits that share a
    // name always agree on them (the validator's rule) while max and increment may differ.
    private static readonly Gen<string> GenLimit =
        Gen.Select(Gen.OneOfConst("\"second\"", "\"minute\"", "10", "\"hour\""), Gen.Bool, Gen.OneOfConst("grant", "session", "global"),
            Gen.Int[0, 2], Gen.Int[1, 4], Gen.Int[0, 3], Gen.Bool,
            (window, calendar, scope, key, max, increment, reason) =>
            {
                string counter = $"c_{window.Trim('"')}_{(calendar ? "cal" : "sl")}_{scope}_{key}";
                var limit = new StringBuilder($"{{ \"counter\": \"{counter}\", \"window\": {window}, \"max\": {max}, \"scope\": \"{scope}\"");
                if (calendar) limit.Append(", \"align\": \"calendar\"");
                if (key == 1) limit.Append(", \"key\": \"args.a\"");
                if (key == 2) limit.Append(", \"key\": \"args.items[0]\"");
                if (increment == 1) limit.Append(", \"increment\": 2");
                if (increment == 2) limit.Append(", \"increment_from\": \"args.n\"");
                if (reason) limit.Append(", \"reason\": \"slow down\"");
                return limit.Append(" }").ToString();
            });

    private static readonly Gen<string> GenEntry =
        Gen.Select(Gen.Frequency((3, Gen.Const((string?)null)), (3, GenAction.Select(a => (string?)a))), Gen.Bool, Gen.Int[0, 9],
            GenRule.Array[0, 3], GenLimit.Array[0, 2],
            (action, reason, hide, rules, limits) =>
            {
                var parts = new List<string>();
                if (action is not null) parts.Add($"\"action\": \"{action}\"");
                if (reason) parts.Add("\"reason\": \"entry reason\"");
                if (hide == 0) parts.Add("\"hide\": true");
                if (rules.Length > 0) parts.Add($"\"rules\": [{string.Join(", ", rules)}]");
                if (limits.Length > 0) parts.Add($"\"limits\": [{string.Join(", ", limits)}]");
                return "{ " + string.Join(", ", parts) + " }";
            });

    // The '*' layer: rules and limits only (an empty layer too), never action, reason or hide.
    private static readonly Gen<string> GenLayer =
        Gen.Select(GenRule.Array[0, 3], GenLimit.Array[0, 2],
            (rules, limits) =>
            {
                var parts = new List<string>();
                if (rules.Length > 0) parts.Add($"\"rules\": [{string.Join(", ", rules)}]");
                if (limits.Length > 0) parts.Add($"\"limits\": [{string.Join(", ", limits)}]");
                return "{ " + string.Join(", ", parts) + " }";
            });

    private static readonly Gen<string> GenPolicy =
        Gen.Select(Gen.Int[0, Keys.Length - 1].ArrayUnique[0, 5], GenEntry.Array[5], Gen.Frequency((1, Gen.Const((string?)null)), (2, GenLayer.Select(l => (string?)l))),
            Gen.Int[0, 3], Gen.OneOfConst([.. Keys, "*"]).Array[0, 2], Gen.Bool, Gen.Bool,
            (keys, entries, layer, layerAt, hide, defaultAllow, defaultReason) =>
            {
                var json = new StringBuilder("{ \"version\": \"1\", \"name\": \"p\"");
                json.Append(defaultAllow ? ", \"default\": \"allow\"" : ", \"default\": \"deny\"");
                if (defaultReason && !defaultAllow) json.Append(", \"default_reason\": \"nope\"");
                if (hide.Length > 0) json.Append(", \"hide\": [").Append(string.Join(", ", hide.Select(h => $"\"{h}\""))).Append(']');
                var members = new List<string>();
                for (int i = 0; i < keys.Length; i++)
                {
                    members.Add($"\"{Keys[keys[i]]}\": {entries[i]}");
                }

                // The layer's place among the entries must not matter.
                if (layer is not null) members.Insert(Math.Min(layerAt, members.Count), "\"*\": " + layer);
                return json.Append(", \"tools\": { ").Append(string.Join(", ", members)).Append(" } }").ToString();
            });

    /// <summary>One call of a sequence.</summary>
    public sealed record Call(string Tool, string Args, string Grant, string Session, int AdvanceSeconds, bool Commit, bool ViaReserveLimits);

    // Arguments, mostly well-formed; shapes 8-15 are the fail-closed cases the compiled evaluators
    // read in one pass and the interpreter one path at a time: escaped and duplicated names (also
    // found after the first copy was read, also deeper), an undecodable name, invalid JSON, trailing
    // content, arguments that are not an object.
    private static readonly Gen<string> GenArgs =
        Gen.Select(Gen.OneOfConst(ArgValues).Array[5], Gen.Int[0, 63], Gen.Int[0, 15],
            (values, present, shape) =>
            {
                if (shape == 0) return "";          // no arguments at all
                var members = new List<string>();
                if ((present & 1) != 0) members.Add(shape == 8 ? $"\"\\u0061\": {values[0]}" : $"\"a\": {values[0]}");
                if ((present & 2) != 0) members.Add($"\"n\": {values[1]}");
                if ((present & 4) != 0) members.Add($"\"items\": [{values[2]}]");
                if ((present & 8) != 0) members.Add($"\"x.y\": {values[3]}");
                if ((present & 16) != 0) members.Add(shape == 9 ? $"\"o\": {{\"k\": {values[4]}, \"\\u006b\": 1}}" : $"\"o\": {{\"k\": {values[4]}}}");
                if ((present & 32) != 0 && shape == 1) members.Add("\"a\": \"dup\"");   // duplicated key: ambiguous
                if ((present & 32) != 0 && shape == 10) members.Add("\"\\u006f\": {\"k\": 2}"); // "o" again, escaped
                if (shape == 11) members.Add("\"\\ud800\": 0");                        // a name that does not decode
                string json = "{" + string.Join(",", members) + "}";
                return shape switch
                {
                    12 => json[..^1],                               // truncated
                    13 => json + " {}",                             // trailing content
                    14 => "[" + string.Join(",", values) + "]",     // an array, not an object
                    15 => values[0],                                // a scalar
                    _ => json,
                };
            });

    private static readonly Gen<Call> GenCall =
        Gen.Select(Gen.OneOfConst(Tools), GenArgs, Gen.OneOfConst("g1", "g2"), Gen.OneOfConst("s1", "s2"),
            Gen.Frequency((6, Gen.Int[0, 2]), (2, Gen.Int[3, 15]), (1, Gen.Int[16, 4000])), Gen.Int[0, 4], Gen.Int[0, 5],
            (tool, args, grant, session, advance, commit, reserve) => new Call(tool, args, grant, session, advance, commit != 0, reserve == 0));

    private static readonly Gen<(string Policy, Call[] Calls)> GenCase = Gen.Select(GenPolicy, GenCall.Array[CallsPerPolicy]);

    [Fact]
    public void CompiledAndInterpretedEvaluatorsAgree()
    {
        int compared = 0, policies = 0, invalid = 0;
        var kinds = new int[6]; // allow, deny, rate_limited, approval; then decided by the '*' layer, by the default under a layer
        GenCase.Array[PoliciesPerBatch].Sample(batch =>
        {
            var (c, p, i) = RunBatch(batch, kinds);
            compared += c;
            policies += p;
            invalid += i;
        }, iter: 6, threads: 1);

        output.WriteLine($"{policies} policies ({invalid} rejected), {compared} decisions compared; allow/deny/rate_limited/approval: {string.Join("/", kinds.Take(4))}; "
            + $"by a '*' rule or limit: {kinds[4]}, by the default with a '*' layer: {kinds[5]}");

        // The property is only as strong as its coverage: most generated policies must be valid.
        Assert.True(policies >= 150, $"only {policies} valid policies ({invalid} rejected by the validator)");
        Assert.True(compared >= 10_000, $"only {compared} decisions compared");
        Assert.All(kinds, count => Assert.True(count >= 100, $"decision kinds seen (allow, deny, rate_limited, approval, by '*', default under '*'): {string.Join(", ", kinds)}"));
    }

    private static (int Compared, int Policies, int Invalid) RunBatch((string Policy, Call[] Calls)[] batch, int[] kinds)
    {
        var sources = new List<string>();
        var cases = new List<(string Json, PolicyDocument Policy, string ClassName, Call[] Calls)>();
        int invalid = 0;
        for (int i = 0; i < batch.Length; i++)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(batch[i].Policy);
            PolicyDocument? policy = PolicyParser.Parse("p.json", utf8).Policy;
            var generatorPolicy = GeneratorParser.Parse("p.json", utf8).Policy;
            if (policy is null || generatorPolicy is null)
            {
                Assert.True(policy is null && generatorPolicy is null, "the two copies of the parser disagree on " + batch[i].Policy);
                invalid++;
                continue;
            }

            string className = "P" + i + "PolicyEvaluator";
            sources.Add(Emitter.EmitEvaluator(generatorPolicy, emitEntryPoint: false, className).Text);
            cases.Add((batch[i].Policy, policy, className, batch[i].Calls));
        }

        if (cases.Count == 0)
        {
            return (0, 0, invalid);
        }

        Assembly assembly = InMemoryCompiler.Load(InMemoryCompiler.CreateCompilation(sources, "Equivalence"), out var context);
        int compared = 0;
        try
        {
            foreach (var (json, policy, className, calls) in cases)
            {
                compared += Compare(json, policy, assembly, className, calls, kinds);
            }
        }
        finally
        {
            context.Unload();
        }

        return (compared, cases.Count, invalid);
    }

    private static int Compare(string json, PolicyDocument policy, Assembly assembly, string className, Call[] calls, int[] kinds)
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 3, 1, 23, 59, 30, TimeSpan.Zero));
        var timeout = TimeSpan.FromSeconds(5);
        IPolicyEvaluator interpreter = new PolicyInterpreter(policy, new PolicyEvaluatorOptions { Time = clock, Counters = new MemoryCounterStore(), RegexTimeout = timeout });
        IPolicyEvaluator compiled = InMemoryCompiler.Create(assembly, className, new PolicyEvaluatorOptions { Time = clock, Counters = new MemoryCounterStore(), RegexTimeout = timeout });
        Assert.Equal(interpreter.Policy, compiled.Policy);

        foreach (string tool in Tools)
        {
            byte[] name = Encoding.UTF8.GetBytes(tool);
            bool expected = interpreter.IsListed(name), actual = compiled.IsListed(name);
            if (expected != actual)
            {
                throw new Xunit.Sdk.XunitException($"IsListed(\"{tool}\"): interpreter {expected}, compiled {actual}\npolicy: {json}");
            }
        }

        for (int i = 0; i < calls.Length; i++)
        {
            Call call = calls[i];
            clock.Advance(TimeSpan.FromSeconds(call.AdvanceSeconds));
            byte[] name = Encoding.UTF8.GetBytes(call.Tool);
            byte[] args = ArgumentBytes(call.Args);
            var toolCall = new ToolCall(name, args, call.Grant, call.Session);
            Decision expected = call.ViaReserveLimits ? interpreter.ReserveLimits(toolCall) : interpreter.Evaluate(toolCall);
            Decision actual = call.ViaReserveLimits ? compiled.ReserveLimits(toolCall) : compiled.Evaluate(toolCall);

            if (expected.Kind != actual.Kind || expected.Rule != actual.Rule || expected.Reason != actual.Reason
                || expected.Counter != actual.Counter || expected.RetryAfter != actual.RetryAfter
                || expected.Reservation.IsEmpty != actual.Reservation.IsEmpty)
            {
                var history = string.Join("\n", calls.Take(i + 1).Select((c, n) => $"  {n}: {c}"));
                throw new Xunit.Sdk.XunitException(
                    $"decisions differ at call {i} ({(call.ViaReserveLimits ? "ReserveLimits" : "Evaluate")})\n" +
                    $"  interpreter: {expected}\n  compiled:    {actual}\npolicy: {json}\ncalls:\n{history}");
            }

            kinds[(int)expected.Kind]++;
            if (expected.Rule.StartsWith("/tools/*/", StringComparison.Ordinal)) kinds[4]++;
            if (expected.Rule == "/default" && policy.Tools.Any(t => t.Name == "*")) kinds[5]++;

            // The same counter effect on both sides: commit or refund the reservation.
            if (call.Commit)
            {
                expected.Reservation.Commit();
                actual.Reservation.Commit();
            }
            else
            {
                expected.Reservation.Rollback();
                actual.Reservation.Rollback();
            }
        }

        return calls.Length;
    }
}
