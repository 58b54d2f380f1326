using System.Text;
using System.Text.RegularExpressions;
using PolicyCompiler.Policy.Language;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Interpretation;

/// <summary>
/// A condition of the model, prepared for evaluation: operands in UTF-8, paths as
/// <see cref="ArgumentPath"/>, regexes and globs compiled. Evaluation goes through
/// <see cref="PolicyOps"/>, the same methods the compiled evaluators call.
/// </summary>
internal abstract class CompiledCondition
{
    protected CompiledCondition(string pointer) => Pointer = pointer;

    /// <summary>JSON pointer of the condition in the policy.</summary>
    public string Pointer { get; }

    /// <summary>Evaluates the condition; records each test in <paramref name="trace"/> when given.</summary>
    public abstract Truth Evaluate(in ToolCall call, List<TraceStep>? trace);

    /// <summary>Prepares <paramref name="condition"/>.</summary>
    public static CompiledCondition Compile(Condition condition, TimeSpan regexTimeout) => condition switch
    {
        TestCondition test => new Test(test, regexTimeout),
        AllCondition all => new All(Compile(all.Conditions, regexTimeout), all.Pointer),
        AnyCondition any => new Any(Compile(any.Conditions, regexTimeout), any.Pointer),
        NotCondition not => new Not(Compile(not.Condition, regexTimeout), not.Pointer),
        _ => throw new ArgumentException($"unknown condition {condition.GetType().Name}", nameof(condition)),
    };

    private static CompiledCondition[] Compile(EquatableArray<Condition> conditions, TimeSpan regexTimeout)
    {
        var compiled = new CompiledCondition[conditions.Count];
        for (int i = 0; i < compiled.Length; i++) compiled[i] = Compile(conditions[i], regexTimeout);
        return compiled;
    }

    /// <summary>Turns a model path below <c>args</c> into lookup steps.</summary>
    public static ArgumentPath ToArgumentPath(ValuePath path)
    {
        var steps = new PathStep[path.Segments.Count];
        for (int i = 0; i < steps.Length; i++)
        {
            var segment = path.Segments[i];
            steps[i] = segment.Property is { } name ? new PathStep(Encoding.UTF8.GetBytes(name), -1) : new PathStep(null, segment.Index);
        }
        return new ArgumentPath(path.Text, steps);
    }

    private sealed class All(CompiledCondition[] parts, string pointer) : CompiledCondition(pointer)
    {
        public override Truth Evaluate(in ToolCall call, List<TraceStep>? trace)
        {
            Truth result = Truth.True;
            foreach (var part in parts)
            {
                result = PolicyOps.And(result, part.Evaluate(call, trace));
                if (result == Truth.False) break; // False AND anything is False
            }
            return result;
        }
    }

    private sealed class Any(CompiledCondition[] parts, string pointer) : CompiledCondition(pointer)
    {
        public override Truth Evaluate(in ToolCall call, List<TraceStep>? trace)
        {
            Truth result = Truth.False;
            foreach (var part in parts)
            {
                result = PolicyOps.Or(result, part.Evaluate(call, trace));
                if (result == Truth.True) break; // True OR anything is True
            }
            return result;
        }
    }

    private sealed class Not(CompiledCondition inner, string pointer) : CompiledCondition(pointer)
    {
        public override Truth Evaluate(in ToolCall call, List<TraceStep>? trace) => PolicyOps.Not(inner.Evaluate(call, trace));
    }

    /// <summary>A constant operand in the forms <see cref="PolicyOps"/> takes.</summary>
    private sealed class Operand
    {
        public Operand(JsonConstant constant)
        {
            Kind = constant.Kind;
            Utf8 = constant.String is { } s ? Encoding.UTF8.GetBytes(s) : [];
            Number = constant.Number;
            Boolean = constant.Boolean;
            Items = new Operand[constant.Items.Count];
            for (int i = 0; i < Items.Length; i++) Items[i] = new Operand(constant.Items[i]);
            Display = constant.Kind switch
            {
                ConstantKind.String => "\"" + constant.String + "\"",
                ConstantKind.Number => PolicyText.FormatNumber(constant.Number),
                ConstantKind.Boolean => constant.Boolean ? "true" : "false",
                ConstantKind.Null => "null",
                _ => "[" + string.Join(", ", Array.ConvertAll(Items, item => item.Display)) + "]",
            };
        }

        public ConstantKind Kind { get; }
        public byte[] Utf8 { get; }
        public double Number { get; }
        public bool Boolean { get; }
        public Operand[] Items { get; }
        public string Display { get; }

        public Truth EqualTo(in PolicyValue value) => Kind switch
        {
            ConstantKind.String => PolicyOps.Eq(value, Utf8),
            ConstantKind.Number => PolicyOps.Eq(value, Number),
            ConstantKind.Boolean => PolicyOps.Eq(value, Boolean),
            ConstantKind.Null => PolicyOps.EqNull(value),
            _ => Truth.False,
        };

        public Truth ContainedIn(in PolicyValue value) => Kind switch
        {
            ConstantKind.String => PolicyOps.Contains(value, Utf8),
            ConstantKind.Number => PolicyOps.Contains(value, Number),
            ConstantKind.Boolean => PolicyOps.Contains(value, Boolean),
            ConstantKind.Null => PolicyOps.ContainsNull(value),
            _ => Truth.Unknown,
        };
    }

    private sealed class Test : CompiledCondition
    {
        private readonly ValueSource _source;
        private readonly ArgumentPath _path;
        private readonly ConditionOperator _operator;
        private readonly Operand _operand;
        private readonly Regex? _regex;
        private readonly GlobPattern? _glob;
        private readonly string _description;

        public Test(TestCondition test, TimeSpan regexTimeout) : base(test.Pointer)
        {
            _source = test.Path.Source;
            _path = ToArgumentPath(test.Path);
            _operator = test.Operator;
            _operand = new Operand(test.Operand);
            if (test.Operator == ConditionOperator.Regex) _regex = PolicyOps.CreateRegex(test.Operand.String!, regexTimeout);
            if (test.Operator == ConditionOperator.Glob) _glob = new GlobPattern(test.Operand.String!);
            _description = $"{test.Path.Text} {OperatorName(test.Operator)} {_operand.Display}";
        }

        public override Truth Evaluate(in ToolCall call, List<TraceStep>? trace)
        {
            PolicyValue value = _source switch
            {
                ValueSource.Args => ArgumentLookup.Find(call.ArgumentsJson, _path),
                ValueSource.Grant => PolicyValue.FromString(call.Grant),
                ValueSource.Session => PolicyValue.FromString(call.Session),
                _ => PolicyValue.FromUtf8String(call.NameUtf8),
            };
            Truth result = Apply(value);
            trace?.Add(new TraceStep(Pointer, $"{_description}: value {Describe(value)} → {(result == Truth.True ? "true" : result == Truth.False ? "false" : "unknown")}"));
            return result;
        }

        private Truth Apply(in PolicyValue value)
        {
            switch (_operator)
            {
                case ConditionOperator.Eq: return _operand.EqualTo(value);
                case ConditionOperator.Neq:
                    return value.Kind == PolicyValueKind.Missing ? Truth.False : PolicyOps.Not(_operand.EqualTo(value));
                case ConditionOperator.In: return In(value);
                case ConditionOperator.NotIn:
                    return value.Kind == PolicyValueKind.Missing ? Truth.False : PolicyOps.Not(In(value));
                case ConditionOperator.Lt: return PolicyOps.Lt(value, _operand.Number);
                case ConditionOperator.Lte: return PolicyOps.Lte(value, _operand.Number);
                case ConditionOperator.Gt: return PolicyOps.Gt(value, _operand.Number);
                case ConditionOperator.Gte: return PolicyOps.Gte(value, _operand.Number);
                case ConditionOperator.Prefix: return PolicyOps.Prefix(value, _operand.Utf8);
                case ConditionOperator.Suffix: return PolicyOps.Suffix(value, _operand.Utf8);
                case ConditionOperator.Contains: return _operand.ContainedIn(value);
                case ConditionOperator.Regex: return PolicyOps.Regex(value, _regex!);
                case ConditionOperator.Glob: return PolicyOps.Glob(value, _glob!);
                case ConditionOperator.Exists: return PolicyOps.Exists(value, _operand.Boolean);
                default: return Truth.Unknown;
            }
        }

        // in: eq against any element, in Kleene OR (an empty list holds for nothing).
        private Truth In(in PolicyValue value)
        {
            // A value behind a duplicated key is Unknown for every test, even against an empty list
            // (docs/policy-language.md, "Fail-closed conditions").
            if (value.Kind == PolicyValueKind.Ambiguous) return Truth.Unknown;
            Truth result = Truth.False;
            foreach (var item in _operand.Items)
            {
                result = PolicyOps.Or(result, item.EqualTo(value));
                if (result == Truth.True) break;
            }
            return result;
        }

        private static string Describe(in PolicyValue value) => value.Kind switch
        {
            PolicyValueKind.Missing => "missing",
            PolicyValueKind.Ambiguous => "ambiguous (duplicated key or invalid JSON)",
            PolicyValueKind.String when value.Text is { } text => "\"" + text + "\"",
            PolicyValueKind.String => "\"" + Encoding.UTF8.GetString(value.Raw) + "\"",
            _ => Encoding.UTF8.GetString(value.Raw),
        };

        private static string OperatorName(ConditionOperator op) => op switch
        {
            ConditionOperator.NotIn => "not_in",
            _ => op.ToString().ToLowerInvariant(),
        };
    }
}
