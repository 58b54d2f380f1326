using System.Text;
using System.Text.Json;
using CsCheck;
using PolicyCompiler.Policy.Runtime;
using static PolicyCompiler.Policy.Runtime.PolicyOps;

namespace PolicyCompiler.Policy.Tests.Runtime;

public class PropertyTests
{
    private static readonly Gen<Truth> GenTruth = Gen.OneOfConst(Truth.False, Truth.True, Truth.Unknown);

    [Fact]
    public void Kleene_laws_hold()
    {
        Gen.Select(GenTruth, GenTruth, GenTruth).Sample((a, b, c) =>
            And(a, b) == And(b, a) && Or(a, b) == Or(b, a)
            && And(a, And(b, c)) == And(And(a, b), c) && Or(a, Or(b, c)) == Or(Or(a, b), c)
            && And(a, Or(b, c)) == Or(And(a, b), And(a, c)) && Or(a, And(b, c)) == And(Or(a, b), Or(a, c))
            && Not(And(a, b)) == Or(Not(a), Not(b)) && Not(Or(a, b)) == And(Not(a), Not(b))
            && Not(Not(a)) == a && And(a, Truth.True) == a && Or(a, Truth.False) == a
            && And(a, a) == a && Or(a, a) == a);
    }

    // Random JSON documents without duplicated names: every path must find what System.Text.Json's DOM finds.
    private static Gen<string> GenJson(int depth)
    {
        var scalar = Gen.OneOfConst("1", "-2.5e3", "true", "false", "null", "\"s\"", "\"\\u0041\\n\"", "\"é\"");
        if (depth == 0) return scalar;
        var inner = GenJson(depth - 1);
        var array = inner.Array[0, 3].Select(items => "[" + string.Join(",", items) + "]");
        var obj = Gen.Select(Gen.OneOfConst("a", "b", "c").Array[0, 3], inner.Array[3])
            .Select((names, values) =>
            {
                var distinct = names.Distinct().ToArray();
                return "{" + string.Join(",", distinct.Select((n, i) => $"\"{(i % 2 == 0 ? n : "\\u00" + ((int)n[0]).ToString("x2"))}\":{values[i]}")) + "}";
            });
        return Gen.Frequency((1, scalar), (2, array), (3, obj));
    }

    [Fact]
    public void Lookup_agrees_with_the_json_dom()
    {
        var gPath = Gen.OneOf<object>(Gen.OneOfConst("a", "b", "c").Select(s => (object)s), Gen.Int[0, 2].Select(i => (object)i)).Array[0, 3];
        Gen.Select(GenJson(3), gPath).Sample((json, path) =>
        {
            var value = ArgumentLookup.Find(Encoding.UTF8.GetBytes(json), ArgumentLookupTests.Path(path));
            using var document = JsonDocument.Parse(json);
            JsonElement element = document.RootElement;
            foreach (var step in path)
            {
                if (step is string name)
                {
                    if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out element)) return value.Kind == PolicyValueKind.Missing;
                }
                else
                {
                    int index = (int)step;
                    if (element.ValueKind != JsonValueKind.Array || index >= element.GetArrayLength()) return value.Kind == PolicyValueKind.Missing;
                    element = element[index];
                }
            }
            PolicyValueKind expected = element.ValueKind switch
            {
                JsonValueKind.Object => PolicyValueKind.Object,
                JsonValueKind.Array => PolicyValueKind.Array,
                JsonValueKind.String => PolicyValueKind.String,
                JsonValueKind.Number => PolicyValueKind.Number,
                JsonValueKind.True => PolicyValueKind.True,
                JsonValueKind.False => PolicyValueKind.False,
                _ => PolicyValueKind.Null,
            };
            if (value.Kind != expected) return false;
            // Same text: strings compared decoded, everything else by its raw JSON.
            return expected == PolicyValueKind.String
                ? Eq(value, Encoding.UTF8.GetBytes(element.GetString()!)) == Truth.True
                : Encoding.UTF8.GetString(value.Raw) == element.GetRawText();
        }, iter: 3000);
    }

    [Fact]
    public void Neq_is_eq_negated_except_when_missing()
    {
        var values = Gen.OneOfConst("1", "\"x\"", "\"\\u0078\"", "true", "null", "[1]", "{}", "<missing>", "<ambiguous>");
        var operands = Gen.OneOfConst("x", "1");
        Gen.Select(values, operands).Sample((v, o) =>
        {
            Truth eq = PolicyOpsTests.On(v, value => Eq(value, Encoding.UTF8.GetBytes(o)));
            Truth neq = PolicyOpsTests.On(v, value => Neq(value, Encoding.UTF8.GetBytes(o)));
            return v == "<missing>" ? eq == Truth.False && neq == Truth.False : neq == Not(eq);
        });
    }
}
