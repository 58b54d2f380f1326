extern alias generator;

using System.Reflection;
using System.Text;
using PolicyCompiler.Generators.Tests.TestHelpers;
using PolicyCompiler.Policy.Interpretation;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;
using Emitter = generator::PolicyCompiler.Generators.PolicyGenerator.Emitter;
using GeneratorParser = generator::PolicyCompiler.Policy.Language.PolicyParser;

namespace PolicyCompiler.Generators.Tests;

/// <summary>
/// The generated fast path for eq/neq/in/not_in with string constants (the argument's raw bytes are
/// compared when PolicyOps.IsPlainString holds) against the interpreter and against the expected
/// decision, on the inputs the fast path must hand to the general path: escaped text equal to a
/// constant after unescaping, invalid UTF-8, lone surrogates, non-strings, missing and ambiguous values.
/// </summary>
public class PlainStringTests
{
    // One rule per operator, each on its own argument, so every call exercises all four.
    private const string Policy = """
        { "version": "1", "name": "p", "default": "deny",
          "tools": {
            "eq":     { "action": "deny", "rules": [ { "when": { "args.v": { "eq": "read" } }, "action": "allow" } ] },
            "neq":    { "action": "deny", "rules": [ { "when": { "args.v": { "neq": "read" } }, "action": "allow" } ] },
            "in":     { "action": "deny", "rules": [ { "when": { "args.v": { "in": ["kube-system", "kube-public", "café", 3, true, "kube-node-lease"] } }, "action": "allow" } ] },
            "not_in": { "action": "deny", "rules": [ { "when": { "args.v": { "not_in": ["kube-system", "kube-public", 3] } }, "action": "allow" } ] },
            "eq_deny": { "rules": [ { "when": { "args.v": { "eq": "read" } }, "action": "deny" } ] },
            "two":    { "action": "deny", "rules": [ { "when": { "all": [ { "args.v": { "in": ["a", "bb"] } }, { "args.w": { "eq": "x" } } ] }, "action": "allow" } ] }
          } }
        """;

    // Arguments as bytes (\xFF stands for an invalid byte), and the expected decision per tool:
    // eq, neq, in, not_in, eq_deny ("deny" means the deny rule fired, i.e. True or Unknown).
    public static TheoryData<string, string> Cases() => new()
    {
        { """{"v":"read"}""",                  "allow deny deny allow deny" },
        { """{"v":"re\u0061d"}""",             "allow deny deny allow deny" },   // escaped, equal after unescaping
        { """{"v":"write"}""",                 "deny allow deny allow allow" },
        { """{"v":"kube-system"}""",           "deny allow allow deny allow" },
        { """{"v":"kube-\u0073ystem"}""",      "deny allow allow deny allow" },
        { """{"v":"kube-node-lease"}""",       "deny allow allow allow allow" },
        { """{"v":"caf\u00e9"}""",             "deny allow allow allow allow" },
        { "{\"v\":\"café\"}",                  "deny allow allow allow allow" },  // plain non-ASCII UTF-8
        { "{\"v\":\"rea\\xFF\"}",              "deny deny deny deny deny" },     // invalid UTF-8: Unknown everywhere
        { "{\"v\":\"read\\xFF\"}",             "deny deny deny deny deny" },
        { "{\"v\":\"kube-system\\xFF\"}",      "deny deny deny deny deny" },
        { """{"v":"\ud800"}""",                "deny deny deny deny deny" },     // lone surrogate: Unknown
        { """{"v":3}""",                       "deny allow allow deny allow" },
        { """{"v":true}""",                    "deny allow allow allow allow" },
        { """{"v":null}""",                    "deny allow deny allow allow" },
        { """{}""",                            "deny deny deny deny allow" },    // missing: eq/neq/in/not_in all False
        { """{"v":"read","v":"read"}""",       "deny deny deny deny deny" },     // ambiguous: Unknown
        { """{"v":"read","\u0076":"x"}""",     "deny deny deny deny deny" },
        { """{"v":"read""",                    "deny deny deny deny deny" },     // invalid JSON: Ambiguous
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void PlainStringFastPath_AgreesWithInterpreter(string args, string expected)
    {
        string[] tools = ["eq", "neq", "in", "not_in", "eq_deny"];
        string[] want = expected.Split(' ');
        byte[] bytes = Bytes(args);
        WithEvaluators((compiled, interpreter) =>
        {
            for (int i = 0; i < tools.Length; i++)
            {
                var call = new ToolCall(Encoding.UTF8.GetBytes(tools[i]), bytes, "g", "s");
                Decision fromCompiled = compiled.Evaluate(call);
                Decision fromInterpreter = interpreter.Evaluate(call);
                Assert.Equal(fromInterpreter.ToString(), fromCompiled.ToString());
                // eq_deny allows when its deny rule does not fire (no action: allow).
                string kind = fromCompiled.Kind == DecisionKind.Allow ? "allow" : "deny";
                Assert.True(want[i] == kind, $"{tools[i]} on {args}: {fromCompiled}, expected {want[i]}");
            }
        });
    }

    [Theory]
    [InlineData("""{"v":"a","w":"x"}""", DecisionKind.Allow)]
    [InlineData("""{"v":"bb","w":"x"}""", DecisionKind.Allow)]
    [InlineData("""{"v":"b","w":"x"}""", DecisionKind.Deny)]
    [InlineData("""{"v":"\u0061","w":"\u0078"}""", DecisionKind.Allow)]
    [InlineData("{\"v\":\"a\",\"w\":\"x\\xFF\"}", DecisionKind.Deny)]
    public void PlainStringFastPath_TwoArguments(string args, DecisionKind expected)
    {
        byte[] bytes = Bytes(args);
        WithEvaluators((compiled, interpreter) =>
        {
            var call = new ToolCall("two"u8, bytes, "g", "s");
            Assert.Equal(expected, compiled.Evaluate(call).Kind);
            Assert.Equal(interpreter.Evaluate(call).ToString(), compiled.Evaluate(call).ToString());
        });
    }

    [Fact]
    public void PlainStringFastPath_IsWhatTheEmitterWrites()
    {
        var parsed = GeneratorParser.Parse("p.json", Encoding.UTF8.GetBytes(Policy)).Policy!;
        string text = Emitter.EmitEvaluator(parsed, emitEntryPoint: false, "PPolicyEvaluator").Text;
        // Each string-compared argument is checked once, and an `in` list becomes a switch on length.
        Assert.Contains("PolicyOps.IsPlainString(", text);
        Assert.Contains("switch (text.Length)", text);
        Assert.Contains("case 15: return MemoryExtensions.SequenceEqual(text, \"kube-node-lease\"u8);", text);
    }

    // "\xFF" in the test data is one invalid byte.
    private static byte[] Bytes(string args)
    {
        var bytes = new List<byte>();
        byte[] utf8 = Encoding.UTF8.GetBytes(args);
        for (int i = 0; i < utf8.Length; i++)
        {
            if (i + 3 < utf8.Length && utf8[i] == '\\' && utf8[i + 1] == 'x' && utf8[i + 2] == 'F' && utf8[i + 3] == 'F')
            {
                bytes.Add(0xFF);
                i += 3;
            }
            else
            {
                bytes.Add(utf8[i]);
            }
        }

        return bytes.ToArray();
    }

    private static void WithEvaluators(Action<IPolicyEvaluator, IPolicyEvaluator> test)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(Policy);
        PolicyDocument policy = PolicyParser.Parse("p.json", utf8).Policy!;
        var generatorPolicy = GeneratorParser.Parse("p.json", utf8).Policy!;
        string source = Emitter.EmitEvaluator(generatorPolicy, emitEntryPoint: false, "PPolicyEvaluator").Text;
        Assembly assembly = InMemoryCompiler.Load(InMemoryCompiler.CreateCompilation([source], "PlainString"), out var context);
        try
        {
            IPolicyEvaluator compiled = InMemoryCompiler.Create(assembly, "PPolicyEvaluator", new PolicyEvaluatorOptions());
            test(compiled, new PolicyInterpreter(policy, new PolicyEvaluatorOptions()));
        }
        finally
        {
            context.Unload();
        }
    }
}
