using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using PolicyCompiler.Policy.Language;

namespace PolicyCompiler.Generators;

public sealed partial class PolicyGenerator
{
    /// <summary>
    /// Writes the C# of a compiled evaluator. Semantics: docs/policy-language.md, "Deciding a call";
    /// the reference interpreter (PolicyInterpreter) follows the same text and the generator tests
    /// prove the two agree. Everything the policy fixes is resolved here, at build time: which
    /// entry a literal tool name selects, whether it is hidden, the `*` layer, reasons and pointers.
    /// </summary>
    internal static class Emitter
    {
        /// <summary>Namespace of every generated type.</summary>
        public const string GeneratedNamespace = "PolicyCompiler.Generated";

        // Every text an agent sees comes from the model (the parser resolves reasons) or from
        // PolicyText, the language's one place for them, so interpreter and evaluator print the same.
        private const string HiddenReason = PolicyText.HiddenReason;

        /// <summary>The rule pointer of a decision by <c>default</c>.</summary>
        private const string DefaultPointer = "/default";

        // Runtime and language types are named through file-local aliases of their global:: names
        // (see Aliases), which keeps the generated conditions readable.
        private const string Runtime = "";
        private const string Language = "";
        private const string Ops = "PolicyOps.";
        private const string DecisionType = "Decision";
        private const string Memory = "MemoryExtensions.";

        private static readonly string[] Aliases =
        {
            "MemoryExtensions = global::System.MemoryExtensions",
            "ArgumentLookup = global::PolicyCompiler.Policy.Runtime.ArgumentLookup",
            "ArgumentPath = global::PolicyCompiler.Policy.Runtime.ArgumentPath",
            "ArgumentReader = global::PolicyCompiler.Policy.Runtime.ArgumentReader",
            "ArgumentSlot = global::PolicyCompiler.Policy.Runtime.ArgumentSlot",
            "CounterRequest = global::PolicyCompiler.Policy.Runtime.CounterRequest",
            "CounterReservation = global::PolicyCompiler.Policy.Runtime.CounterReservation",
            "Decision = global::PolicyCompiler.Policy.Runtime.Decision",
            "GlobPattern = global::PolicyCompiler.Policy.Runtime.GlobPattern",
            "ICounterStore = global::PolicyCompiler.Policy.Runtime.ICounterStore",
            "IPolicyEvaluator = global::PolicyCompiler.Policy.Runtime.IPolicyEvaluator",
            "LimitArguments = global::PolicyCompiler.Policy.Runtime.LimitArguments",
            "PathStep = global::PolicyCompiler.Policy.Runtime.PathStep",
            "PolicyEvaluatorOptions = global::PolicyCompiler.Policy.Runtime.PolicyEvaluatorOptions",
            "PolicyInfo = global::PolicyCompiler.Policy.Runtime.PolicyInfo",
            "PolicyMode = global::PolicyCompiler.Policy.Language.PolicyMode",
            "PolicyOps = global::PolicyCompiler.Policy.Runtime.PolicyOps",
            "PolicyValue = global::PolicyCompiler.Policy.Runtime.PolicyValue",
            "ToolAction = global::PolicyCompiler.Policy.Language.ToolAction",
            "ToolCall = global::PolicyCompiler.Policy.Runtime.ToolCall",
            "Truth = global::PolicyCompiler.Policy.Runtime.Truth",
            "WindowAlignment = global::PolicyCompiler.Policy.Language.WindowAlignment",
        };

        /// <summary>A generated file.</summary>
        public readonly struct EvaluatorSource
        {
            public EvaluatorSource(string hintName, string text, string className)
            {
                HintName = hintName;
                Text = text;
                ClassName = className;
            }

            public string HintName { get; }

            public string Text { get; }

            public string ClassName { get; }
        }

        /// <summary>
        /// Emits the evaluator class of <paramref name="policy"/> and, when <paramref name="emitEntryPoint"/>,
        /// the <c>CompiledPolicy</c> entry point. Tests pass a <paramref name="className"/> to compile
        /// many policies into one assembly.
        /// </summary>
        public static EvaluatorSource EmitEvaluator(PolicyDocument policy, bool emitEntryPoint, string? className = null)
        {
            var plan = new Plan(policy, className ?? ClassNameFor(policy.Name));
            return new EvaluatorSource(plan.ClassName + ".g.cs", plan.Write(emitEntryPoint), plan.ClassName);
        }

        /// <summary><c>eks-prod</c> → <c>EksProdPolicyEvaluator</c>.</summary>
        public static string ClassNameFor(string policyName)
        {
            var name = new StringBuilder();
            bool upper = true;
            foreach (char c in policyName)
            {
                if (c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9'))
                {
                    name.Append(upper ? char.ToUpperInvariant(c) : c);
                    upper = false;
                }
                else
                {
                    upper = true;
                }
            }

            if (name.Length == 0 || char.IsDigit(name[0]))
            {
                name.Insert(0, "Policy");
            }

            return name.Append("PolicyEvaluator").ToString();
        }

        /// <summary>
        /// The one escaping helper for policy text in generated code: a C# string literal with
        /// quotes, backslashes, every control and non-ASCII character escaped as <c>\uXXXX</c>, so
        /// no policy string can end the literal, a comment or a line.
        /// </summary>
        public static string Literal(string value)
        {
            var literal = new StringBuilder(value.Length + 2).Append('"');
            foreach (char c in value)
            {
                switch (c)
                {
                    case '"':
                        literal.Append("\\\"");
                        break;
                    case '\\':
                        literal.Append("\\\\");
                        break;
                    default:
                        if (c >= ' ' && c < '\u007f')
                        {
                            literal.Append(c);
                        }
                        else
                        {
                            literal.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                        }

                        break;
                }
            }

            return literal.Append('"').ToString();
        }

        /// <summary>Policy text for a comment: the escaped literal (safe on one line, no <c>*/</c> risk in <c>//</c> comments).</summary>
        private static string Text(string value) => Literal(value);

        /// <summary>Policy text for an XML doc comment.</summary>
        private static string Xml(string value) =>
            value.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");

        /// <summary>A UTF-8 literal of policy text (a byte array for text that is not well-formed UTF-16).</summary>
        private static string Utf8(string value)
        {
            if (IsWellFormed(value))
            {
                return Literal(value) + "u8";
            }

            // Lone surrogates cannot be a u8 literal; the interpreter encodes them with
            // Encoding.UTF8 (replacement characters), so emit exactly those bytes.
            byte[] bytes = Encoding.UTF8.GetBytes(value);
            var array = new StringBuilder("new global::System.ReadOnlySpan<byte>(new byte[] { ");
            foreach (byte b in bytes)
            {
                array.Append("0x").Append(b.ToString("X2", CultureInfo.InvariantCulture)).Append(", ");
            }

            return array.Append("})").ToString();
        }

        private static bool IsWellFormed(string value)
        {
            for (int i = 0; i < value.Length; i++)
            {
                if (char.IsHighSurrogate(value[i]))
                {
                    if (i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1]))
                    {
                        return false;
                    }

                    i++;
                }
                else if (char.IsLowSurrogate(value[i]))
                {
                    return false;
                }
            }

            return true;
        }

        /// <summary>A double literal that round-trips exactly.</summary>
        private static string Number(double value)
        {
            if (double.IsPositiveInfinity(value))
            {
                return "double.PositiveInfinity";
            }

            if (double.IsNegativeInfinity(value))
            {
                return "double.NegativeInfinity";
            }

            if (double.IsNaN(value))
            {
                return "double.NaN";
            }

            return value.ToString("R", CultureInfo.InvariantCulture) + "d";
        }

        private static string Bool(bool value) => value ? "true" : "false";

        /// <summary>A C# identifier fragment for a tool name (readability only; uniqueness comes from the index).</summary>
        private static string Identifier(string name)
        {
            var identifier = new StringBuilder();
            foreach (char c in name)
            {
                if (identifier.Length >= 40)
                {
                    break;
                }

                if (c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9'))
                {
                    identifier.Append(c);
                }
                else if (c == '*')
                {
                    identifier.Append("Any");
                }
                else if (identifier.Length == 0 || identifier[identifier.Length - 1] != '_')
                {
                    identifier.Append('_');
                }
            }

            return identifier.ToString().Trim('_');
        }

        private static string ActionWord(ToolAction action) => action switch
        {
            ToolAction.Deny => "deny",
            ToolAction.Approve => "approve",
            _ => "allow",
        };

        /// <summary>Everything the emitter decides about one policy before writing a line.</summary>
        private sealed class Plan
        {
            private readonly PolicyDocument _policy;
            private readonly ToolEntry[] _entries;                  // selectable entries (not `*`), ordinal order of the key
            private readonly ToolEntry? _layer;                     // the `*` layer W, if any: never selected, applies to every call
            private readonly ToolEntry[] _patternsBySpecificity;    // pattern entries, most specific first
            private readonly Dictionary<ToolEntry, string> _entryNames = new();
            private readonly List<string> _staticFields = new();
            private readonly Dictionary<string, string> _pathFields = new(StringComparer.Ordinal);
            private readonly Dictionary<string, string> _globFields = new(StringComparer.Ordinal);

            // Inside one decision block: the argument paths already looked up into locals (path field →
            // local name), so each argument is found once per call however many tests read it.
            private Dictionary<string, string>? _blockLocals;

            // String comparisons on arguments: the path fields of the block that some eq/neq/in/not_in
            // test compares with a string constant, and (once declared) the local that says whether the
            // argument is a plain string (PolicyOps.IsPlainString: unescaped, valid UTF-8). Checked once
            // per argument, then each constant is a byte comparison (an `in` list a switch on length).
            private HashSet<string>? _stringComparedFields;
            private Dictionary<string, string>? _plainLocals;
            private readonly Dictionary<string, string> _matchMethods = new(StringComparer.Ordinal); // constant list → method
            private readonly List<string[]> _matchMethodConstants = new();
            private readonly List<string> _regexPatterns = new();
            private int _maxLimits;

            // One-pass argument reading: a block that needs two or more argument paths (in its rules
            // and its limits' key/increment_from) reads them all with one ArgumentReader into stack
            // slots, instead of one ArgumentLookup scan of the arguments per path.
            private readonly Dictionary<string, BlockArguments?> _blockArguments = new(StringComparer.Ordinal);
            private BlockArguments? _currentArguments;   // the block being written, when it reads slots
            private bool _slotsRead;                    // ... and the read is already emitted
            private Dictionary<string, int>? _reserveSlots; // inside Reserve*: path field → slot
            private int _maxSlots;
            private readonly Dictionary<string, string> _readerFields = new(StringComparer.Ordinal); // path list → reader field

            public Plan(PolicyDocument policy, string className)
            {
                _policy = policy;
                ClassName = className;
                ToolEntry[] all = policy.Tools.AsSpan().ToArray();
                Array.Sort(all, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                var selectable = new List<ToolEntry>(all.Length);
                for (int i = 0; i < all.Length; i++)
                {
                    _entryNames[all[i]] = "Tool" + i.ToString(CultureInfo.InvariantCulture)
                        + (Identifier(all[i].Name) is { Length: > 0 } id ? "_" + id : string.Empty);
                    if (PolicyPatterns.IsLayer(all[i].Name))
                    {
                        _layer = all[i];
                    }
                    else
                    {
                        selectable.Add(all[i]);
                    }
                }

                _entries = selectable.ToArray();

                var patterns = new List<ToolEntry>();
                foreach (ToolEntry entry in _entries)
                {
                    if (entry.IsPattern)
                    {
                        patterns.Add(entry);
                    }
                }

                patterns.Sort(static (a, b) => PolicyPatterns.CompareSpecificity(a.Name, b.Name));
                _patternsBySpecificity = patterns.ToArray();
            }

            public string ClassName { get; }

            private IEnumerable<(string Name, string Route)> LiteralRoutes()
            {
                var names = new SortedSet<string>(StringComparer.Ordinal);
                foreach (ToolEntry entry in _entries)
                {
                    if (!entry.IsPattern)
                    {
                        names.Add(entry.Name);
                    }
                }

                foreach (HidePattern hide in _policy.Hide)
                {
                    if (!PolicyPatterns.IsPattern(hide.Pattern))
                    {
                        names.Add(hide.Pattern);
                    }
                }

                var routes = new List<(string Name, string Route)>();
                foreach (string name in names)
                {
                    routes.Add((name, RouteOfLiteral(name)));
                }

                // Switch on the UTF-8 length, then compare bytes: group by length, ordinal within.
                routes.Sort(static (a, b) =>
                {
                    int byLength = Encoding.UTF8.GetByteCount(a.Name).CompareTo(Encoding.UTF8.GetByteCount(b.Name));
                    return byLength != 0 ? byLength : string.CompareOrdinal(a.Name, b.Name);
                });
                return routes;
            }

            /// <summary>Spec steps 1-2 for a name known at build time.</summary>
            private string RouteOfLiteral(string name)
            {
                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    if (PolicyPatterns.Matches(_policy.Hide[i].Pattern, name))
                    {
                        return HiddenRoute(i);
                    }
                }

                foreach (ToolEntry entry in _entries)
                {
                    if (!entry.IsPattern && entry.Name == name)
                    {
                        return _entryNames[entry];
                    }
                }

                foreach (ToolEntry entry in _patternsBySpecificity)
                {
                    if (PolicyPatterns.Matches(entry.Name, name))
                    {
                        return _entryNames[entry];
                    }
                }

                return "Default";
            }

            private static string HiddenRoute(int index) => "Hidden" + index.ToString(CultureInfo.InvariantCulture);

            public string Write(bool emitEntryPoint)
            {
                // The body first: it registers the static fields (paths, globs, regexes) it uses.
                var body = new SourceWriter();
                body.Indent();
                body.Indent();
                WriteMembers(body);

                var w = new SourceWriter();
                w.Line("// <auto-generated/>");
                w.Line("#nullable enable");
                w.Line();
                w.Open("namespace " + GeneratedNamespace);
                foreach (string alias in Aliases)
                {
                    w.Line("using " + alias + ";");
                }

                w.Line();
                WriteClassDoc(w);
                w.Line("[global::System.CodeDom.Compiler.GeneratedCode(\"PolicyCompiler.Generators\", \"1.0.0.0\")]");
                w.Open("public sealed class " + ClassName + " : " + Runtime + "IPolicyEvaluator");
                w.Line("private readonly global::System.TimeProvider _time;");
                w.Line("private readonly " + Runtime + "ICounterStore _counters;");
                w.Line("private readonly global::System.TimeSpan _regexTimeout;");
                for (int i = 0; i < _regexPatterns.Count; i++)
                {
                    w.Line("private global::System.Text.RegularExpressions.Regex? _regex" + i.ToString(CultureInfo.InvariantCulture) + ";");
                }

                foreach (string field in _staticFields)
                {
                    w.Line(field);
                }

                w.Line();
                w.Line("/// <summary>Creates the evaluator with its clock, counter store and regex timeout.</summary>");
                w.Open("public " + ClassName + "(" + Runtime + "PolicyEvaluatorOptions? options = null)");
                w.Line("options ??= new " + Runtime + "PolicyEvaluatorOptions();");
                w.Line("_time = options.Time;");
                w.Line("_counters = options.Counters;");
                w.Line("_regexTimeout = options.RegexTimeout;");
                w.Close();
                w.Line();
                w.Line("/// <summary>The compiled policy: name, SHA-256, mode and source text.</summary>");
                w.Line("public static " + Runtime + "PolicyInfo Info { get; } = new " + Runtime + "PolicyInfo(");
                w.Indent();
                w.Line(Literal(_policy.Name) + ",");
                w.Line(Literal(_policy.Sha256) + ",");
                w.Line(Language + "PolicyMode." + _policy.Mode + ",");
                var pins = new List<ToolEntry>();
                foreach (ToolEntry tool in _policy.Tools)
                {
                    if (tool.Pin is not null && !tool.IsPattern)
                    {
                        pins.Add(tool);
                    }
                }

                var approvalTimeouts = ApprovalTimeouts();
                if (pins.Count == 0 && approvalTimeouts.Count == 0)
                {
                    w.Line(Literal(_policy.SourceText) + ");");
                    w.Outdent();
                }
                else
                {
                    w.Line(Literal(_policy.SourceText) + ")");
                    w.Outdent();
                    w.Line("{");
                    w.Indent();
                    if (pins.Count > 0)
                    {
                        // Pinned tool definitions (docs/scan.md, "Pinning"), in ordinal name order so the output is stable.
                        pins.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
                        w.Line("Pins = new global::System.Collections.Generic.Dictionary<string, string>(global::System.StringComparer.Ordinal)");
                        w.Line("{");
                        w.Indent();
                        foreach (ToolEntry tool in pins)
                        {
                            w.Line("[" + Literal(tool.Name) + "] = " + Literal(tool.Pin!) + ",");
                        }

                        w.Outdent();
                        w.Line("},");
                    }

                    if (approvalTimeouts.Count > 0)
                    {
                        // approval.timeout per entry pointer ("" is the top-level one), docs/approvals.md; ordinal key order.
                        w.Line("ApprovalTimeouts = new global::System.Collections.Generic.Dictionary<string, long>(global::System.StringComparer.Ordinal)");
                        w.Line("{");
                        w.Indent();
                        foreach (KeyValuePair<string, long> timeout in approvalTimeouts)
                        {
                            w.Line("[" + Literal(timeout.Key) + "] = " + timeout.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) + ",");
                        }

                        w.Outdent();
                        w.Line("},");
                    }

                    w.Outdent();
                    w.Line("};");
                }

                w.Line();
                w.Line("/// <inheritdoc/>");
                w.Line("public " + Runtime + "PolicyInfo Policy => Info;");
                w.Line();
                w.Append(body.ToString());
                w.Close();
                if (emitEntryPoint)
                {
                    w.Line();
                    w.Line("/// <summary>The entry point the gateway host calls: the policy this build compiled.</summary>");
                    w.Line("[global::System.CodeDom.Compiler.GeneratedCode(\"PolicyCompiler.Generators\", \"1.0.0.0\")]");
                    w.Open("public static class CompiledPolicy");
                    w.Line("/// <summary>Creates the compiled evaluator.</summary>");
                    w.Line("public static " + Runtime + "IPolicyEvaluator Create(" + Runtime + "PolicyEvaluatorOptions? options = null) => new " + ClassName + "(options);");
                    w.Line();
                    w.Line("/// <summary>What the compiled evaluator enforces.</summary>");
                    w.Line("public static " + Runtime + "PolicyInfo Info => " + ClassName + ".Info;");
                    w.Close();
                }

                w.Close();
                return w.ToString();
            }

            /// <summary>The policy's approval timeouts, as the interpreter's <c>PolicyInfo.ApprovalTimeouts</c>: entry pointer (and "" for the top level) → seconds, ordinal order.</summary>
            private List<KeyValuePair<string, long>> ApprovalTimeouts()
            {
                var timeouts = new List<KeyValuePair<string, long>>();
                if (_policy.ApprovalTimeoutSeconds is { } fallback)
                {
                    timeouts.Add(new KeyValuePair<string, long>(string.Empty, fallback));
                }

                foreach (ToolEntry tool in _policy.Tools)
                {
                    if (tool.ApprovalTimeoutSeconds is { } seconds)
                    {
                        timeouts.Add(new KeyValuePair<string, long>(tool.Pointer, seconds));
                    }
                }

                timeouts.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
                return timeouts;
            }

            private void WriteClassDoc(SourceWriter w)
            {
                w.Line("/// <summary>");
                w.Line("/// Compiled from policy " + Xml(Text(_policy.Name)) + " (sha256 " + _policy.Sha256 + ", mode " + _policy.Mode.ToString().ToLowerInvariant() + ").");
                if (_policy.Description is not null)
                {
                    w.Line("/// " + Xml(Text(_policy.Description)));
                }

                w.Line("/// <list type=\"bullet\">");
                if (_layer is not null)
                {
                    w.Line("/// <item>" + Xml(LayerSummary(_layer)) + "</item>");
                }

                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    w.Line("/// <item>Hidden (denied, not listed): tools matching " + Xml(Text(_policy.Hide[i].Pattern)) + ".</item>");
                }

                foreach (ToolEntry entry in _entries)
                {
                    w.Line("/// <item>" + Xml(Summary(entry)) + "</item>");
                }

                w.Line("/// <item>Any other tool: " + (_policy.Default == DefaultAction.Allow ? "allowed" : "denied (" + Xml(Text(_policy.DefaultReason)) + ")") + ".</item>");
                w.Line("/// </list>");
                w.Line("/// </summary>");
            }

            private static string LayerSummary(ToolEntry layer)
            {
                var summary = new StringBuilder("Every tool not hidden (the \"*\" layer): ");
                summary.Append(layer.Rules.Count).Append(layer.Rules.Count == 1 ? " rule" : " rules").Append(" checked first");
                foreach (PolicyLimit limit in layer.Limits)
                {
                    summary.Append(", ").Append(LimitWords(limit));
                }

                return summary.Append('.').ToString();
            }

            private static string Summary(ToolEntry entry)
            {
                var summary = new StringBuilder(entry.IsPattern ? "Tools matching " : "Tool ").Append(Text(entry.Name)).Append(": ");
                if (entry.Hidden)
                {
                    return summary.Append("hidden (denied, not listed).").ToString();
                }

                summary.Append(entry.Action switch
                {
                    ToolAction.Deny => "denied",
                    ToolAction.Approve => "need approval",
                    _ => "allowed",
                });
                if (entry.Rules.Count > 0)
                {
                    summary.Append(", ").Append(entry.Rules.Count).Append(entry.Rules.Count == 1 ? " rule" : " rules");
                }

                foreach (PolicyLimit limit in entry.Limits)
                {
                    summary.Append(", ").Append(LimitWords(limit));
                }

                return summary.Append('.').ToString();
            }

            private static string LimitWords(PolicyLimit limit) =>
                "at most " + limit.Max.ToString("R", CultureInfo.InvariantCulture) + " per "
                + limit.Window.Seconds.ToString(CultureInfo.InvariantCulture) + " s"
                + (limit.Window.Alignment == WindowAlignment.Calendar ? " (calendar)" : string.Empty)
                + " per " + limit.Scope.ToString().ToLowerInvariant()
                + (limit.Key is null ? string.Empty : " and " + Text(limit.Key.Text))
                + " on counter " + Text(limit.Counter);

            // Exact names a Select method compares inline; more get one method per name length.
            private const int InlineLiteralLimit = 32;

            private static int EndOfLength(List<(string Name, string Route)> literals, int start)
            {
                int length = Encoding.UTF8.GetByteCount(literals[start].Name);
                int end = start;
                while (end < literals.Count && Encoding.UTF8.GetByteCount(literals[end].Name) == length)
                {
                    end++;
                }

                return end;
            }

            /// <summary>
            /// One method per name length: a decision tree of switches on single bytes (at each level the
            /// position that tells the most of the remaining names apart), down to one candidate name,
            /// compared whole once. A lookup costs a few byte switches and one comparison, however many
            /// names share the length. Deterministic: positions and bytes ascending, names in ordinal order.
            /// </summary>
            private static void WriteLengthSelectors(SourceWriter w, List<(string Name, string Route)> literals)
            {
                int i = 0;
                while (i < literals.Count)
                {
                    int end = EndOfLength(literals, i);
                    int length = Encoding.UTF8.GetByteCount(literals[i].Name);
                    var candidates = new List<(byte[] Bytes, int Literal)>();
                    for (int k = i; k < end; k++)
                    {
                        candidates.Add((Encoding.UTF8.GetBytes(literals[k].Name), k));
                    }

                    string lengthText = length.ToString(CultureInfo.InvariantCulture);
                    w.Line("/// <summary>Exact names of " + lengthText + " bytes, told apart byte by byte, then compared whole.</summary>");
                    w.Open("private static bool SelectLength" + lengthText + "(global::System.ReadOnlySpan<byte> name, out Route route)");
                    WriteSelectorTree(w, literals, candidates, length, new bool[length]);
                    w.Line("route = Route.Default;");
                    w.Line("return false;");
                    w.Close();
                    w.Line();
                    i = end;
                }
            }

            private static void WriteSelectorTree(SourceWriter w, List<(string Name, string Route)> literals, List<(byte[] Bytes, int Literal)> candidates, int length, bool[] used)
            {
                if (candidates.Count == 1)
                {
                    int k = candidates[0].Literal;
                    w.Open("if (" + Memory + "SequenceEqual(name, " + Utf8(literals[k].Name) + "))");
                    w.Line("route = Route." + literals[k].Route + ";");
                    w.Line("return true;");
                    w.Close();
                    return;
                }

                int position = -1;
                int mostDistinct = 1;
                for (int p = 0; p < length; p++)
                {
                    if (used[p])
                    {
                        continue;
                    }

                    var distinct = new HashSet<byte>();
                    foreach ((byte[] bytes, _) in candidates)
                    {
                        distinct.Add(bytes[p]);
                    }

                    if (distinct.Count > mostDistinct)
                    {
                        mostDistinct = distinct.Count;
                        position = p;
                    }
                }

                // Distinct names of one length always differ somewhere; the guard keeps a malformed
                // model (duplicate names) from recursing forever.
                if (position < 0)
                {
                    foreach ((_, int k) in candidates)
                    {
                        w.Open("if (" + Memory + "SequenceEqual(name, " + Utf8(literals[k].Name) + "))");
                        w.Line("route = Route." + literals[k].Route + ";");
                        w.Line("return true;");
                        w.Close();
                    }

                    return;
                }

                var byValue = new SortedDictionary<byte, List<(byte[] Bytes, int Literal)>>();
                foreach ((byte[] Bytes, int Literal) candidate in candidates)
                {
                    if (!byValue.TryGetValue(candidate.Bytes[position], out List<(byte[] Bytes, int Literal)>? group))
                    {
                        group = new List<(byte[] Bytes, int Literal)>();
                        byValue.Add(candidate.Bytes[position], group);
                    }

                    group.Add(candidate);
                }

                used[position] = true;
                w.Open("switch (name[" + position.ToString(CultureInfo.InvariantCulture) + "])");
                foreach (KeyValuePair<byte, List<(byte[] Bytes, int Literal)>> group in byValue)
                {
                    w.Line("case 0x" + group.Key.ToString("X2", CultureInfo.InvariantCulture) + ":");
                    w.Indent();
                    WriteSelectorTree(w, literals, group.Value, length, used);
                    w.Line("break;");
                    w.Outdent();
                }

                w.Close();
                used[position] = false;
            }

            /// <summary>
            /// Past a few dozen entries, the block methods are not inlined into Evaluate and ReserveLimits:
            /// Native AOT inlines the small ones, each inlined block keeps its own Decision temporary
            /// (references, so zeroed on entry), and a 500-entry Evaluate zeroed a 13 KB frame on every
            /// call (~1,350 instructions) instead of jumping to the block (docs/performance.md).
            /// </summary>
            private void WriteBlockAttributes(SourceWriter w)
            {
                if (_entries.Length > InlineLiteralLimit)
                {
                    w.Line("[global::System.Runtime.CompilerServices.MethodImpl(global::System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]");
                }
            }

            private void WriteMembers(SourceWriter w)
            {
                List<(string Name, string Route)> literals = new(LiteralRoutes());
                List<(string Check, string Route, string Comment)> fallthrough = FallthroughRoutes(out bool defaultReachable);

                // Routes: which block decides a tool name.
                w.Line("/// <summary>The block that decides a tool (spec steps 1-2, resolved at build time where the name is known).</summary>");
                // A byte keeps the switch tables small; a policy with more than 255 entries and hide
                // patterns needs a wider type (the values are Default, then one per hide pattern and entry).
                int routeCount = 1 + _policy.Hide.Count + _entries.Length;
                w.Open(routeCount <= 256 ? "private enum Route : byte" : "private enum Route : int");
                w.Line("Default,");
                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    w.Line(HiddenRoute(i) + ",");
                }

                foreach (ToolEntry entry in _entries)
                {
                    w.Line(_entryNames[entry] + ",");
                }

                w.Close();
                w.Line();

                w.Line("/// <summary>Selects the block for a tool name: exact names by length and bytes, then hide patterns, then pattern entries, most specific first.</summary>");
                w.Open("private static Route Select(global::System.ReadOnlySpan<byte> name)");
                // Many names in one method defeat the JIT: hundreds of span temporaries make an 8 KB
                // frame zeroed on every call and exhaust the inlining budget (a 500-tool policy took
                // ~0.5 µs per lookup). Past a few dozen names, each length gets its own small method.
                bool perLength = literals.Count > InlineLiteralLimit;
                if (literals.Count > 0)
                {
                    if (perLength)
                    {
                        w.Line("Route route;");
                    }

                    w.Open("switch (name.Length)");
                    int i = 0;
                    while (i < literals.Count)
                    {
                        int length = Encoding.UTF8.GetByteCount(literals[i].Name);
                        string lengthText = length.ToString(CultureInfo.InvariantCulture);
                        w.Line("case " + lengthText + ":");
                        w.Indent();
                        if (perLength)
                        {
                            w.Line("if (SelectLength" + lengthText + "(name, out route)) return route;");
                            i = EndOfLength(literals, i);
                        }
                        else
                        {
                            for (; i < literals.Count && Encoding.UTF8.GetByteCount(literals[i].Name) == length; i++)
                            {
                                w.Line("if (" + Memory + "SequenceEqual(name, " + Utf8(literals[i].Name) + ")) return Route." + literals[i].Route + ";");
                            }
                        }

                        w.Line("break;");
                        w.Outdent();
                    }

                    w.Close();
                    w.Line();
                }

                foreach ((string check, string route, string comment) in fallthrough)
                {
                    w.Line("// " + comment);
                    w.Line(check == "true" ? "return Route." + route + ";" : "if (" + check + ") return Route." + route + ";");
                }

                if (defaultReachable)
                {
                    w.Line("return Route.Default;");
                }

                w.Close();
                w.Line();
                if (perLength)
                {
                    WriteLengthSelectors(w, literals);
                }

                // Evaluate.
                w.Line("/// <inheritdoc/>");
                w.Open("public " + DecisionType + " Evaluate(in " + Runtime + "ToolCall call)");
                w.Open("switch (Select(call.NameUtf8))");
                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    w.Line("case Route." + HiddenRoute(i) + ": return " + DecisionType + ".Deny(" + Literal(_policy.Hide[i].Pointer) + ", " + Literal(HiddenReason) + ");");
                }

                foreach (ToolEntry entry in _entries)
                {
                    w.Line("case Route." + _entryNames[entry] + ": return Evaluate" + _entryNames[entry] + "(in call, approved: false);");
                }

                w.Line("default: return " + DefaultDecision(approved: false) + ";");
                w.Close();
                w.Close();
                w.Line();

                // ReserveLimits: decides as Evaluate does, except that approval goes on to the limits
                // as an allow would, with the same rule pointer (the interpreter's definition).
                w.Line("/// <inheritdoc/>");
                w.Open("public " + DecisionType + " ReserveLimits(in " + Runtime + "ToolCall call)");
                w.Open("switch (Select(call.NameUtf8))");
                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    w.Line("case Route." + HiddenRoute(i) + ": return " + DecisionType + ".Deny(" + Literal(_policy.Hide[i].Pointer) + ", " + Literal(HiddenReason) + ");");
                }

                foreach (ToolEntry entry in _entries)
                {
                    w.Line("case Route." + _entryNames[entry] + ": return Evaluate" + _entryNames[entry] + "(in call, approved: true);");
                }

                w.Line("default: return " + DefaultDecision(approved: true) + ";");
                w.Close();
                w.Close();
                w.Line();

                // IsListed.
                w.Line("/// <inheritdoc/>");
                w.Open("public bool IsListed(global::System.ReadOnlySpan<byte> toolNameUtf8)");
                w.Open("switch (Select(toolNameUtf8))");
                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    w.Line("case Route." + HiddenRoute(i) + ": return false;");
                }

                foreach (ToolEntry entry in _entries)
                {
                    w.Line("case Route." + _entryNames[entry] + ": return " + Bool(IsListed(entry)) + ";");
                }

                w.Line("default: return " + Bool(IsListed(null)) + ";");
                w.Close();
                w.Close();

                // One block per entry, and one for tools no entry matches when the `*` layer has
                // rules or limits for them too.
                foreach (ToolEntry entry in _entries)
                {
                    w.Line();
                    WriteEntry(w, entry);
                }

                if (_layer is not null)
                {
                    w.Line();
                    WriteDefault(w);
                }

                for (int i = 0; i < _matchMethodConstants.Count; i++)
                {
                    w.Line();
                    WriteMatchMethod(w, "Matches" + i.ToString(CultureInfo.InvariantCulture), _matchMethodConstants[i]);
                }

                if (_maxSlots > 0)
                {
                    w.Line();
                    w.Line("/// <summary>Room for the argument values a block reads in one pass, on the stack.</summary>");
                    w.Line("[global::System.Runtime.CompilerServices.InlineArray(" + _maxSlots.ToString(CultureInfo.InvariantCulture) + ")]");
                    w.Open("private struct ArgumentSlotBuffer");
                    w.Line("private " + Runtime + "ArgumentSlot _element0;");
                    w.Close();
                }

                if (_maxLimits > 0)
                {
                    w.Line();
                    w.Line("/// <summary>Room for the counter requests of one call, on the stack.</summary>");
                    w.Line("[global::System.Runtime.CompilerServices.InlineArray(" + _maxLimits.ToString(CultureInfo.InvariantCulture) + ")]");
                    w.Open("private struct CounterRequestBuffer");
                    w.Line("private " + Runtime + "CounterRequest _element0;");
                    w.Close();
                }
            }

            /// <summary>The decision for a tool no entry matches: the default, or the block that adds the `*` layer to it.</summary>
            private string DefaultDecision(bool approved) => _layer is not null
                ? "EvaluateDefault(in call, approved: " + Bool(approved) + ")"
                : DefaultActionDecision();

            private string DefaultActionDecision() => _policy.Default == DefaultAction.Allow
                ? Allow(null, Literal(DefaultPointer))
                : DecisionType + ".Deny(" + Literal(DefaultPointer) + ", " + Literal(_policy.DefaultReason) + ")";

            /// <summary>
            /// Whether a tool selecting <paramref name="entry"/> (null: no entry matches) is listed, the
            /// interpreter's definition: not when hidden; else the first rule of <c>W.rules ++ E.rules</c>
            /// that is unconditional decides (listed unless deny), a conditional allow or approve rule
            /// lists it; else listed unless the entry's action (or the default) is deny.
            /// </summary>
            private bool IsListed(ToolEntry? entry)
            {
                if (entry is not null && entry.Hidden)
                {
                    return false;
                }

                foreach ((PolicyRule rule, _) in Rules(entry))
                {
                    if (rule.When is null || rule.Action != ToolAction.Deny)
                    {
                        return rule.Action != ToolAction.Deny;
                    }
                }

                return entry is null ? _policy.Default == DefaultAction.Allow : entry.Action != ToolAction.Deny;
            }

            /// <summary>The rules that apply to a tool selecting <paramref name="entry"/> (null: no entry matches): the `*` layer's, then its own.</summary>
            private List<(PolicyRule Rule, ToolEntry Owner)> Rules(ToolEntry? entry)
            {
                var rules = new List<(PolicyRule, ToolEntry)>();
                if (_layer is not null)
                {
                    foreach (PolicyRule rule in _layer.Rules)
                    {
                        rules.Add((rule, _layer));
                    }
                }

                if (entry is not null)
                {
                    foreach (PolicyRule rule in entry.Rules)
                    {
                        rules.Add((rule, entry));
                    }
                }

                return rules;
            }

            /// <summary>The limits reserved for an allowed call selecting <paramref name="entry"/> (null: no entry matches): the `*` layer's, then its own.</summary>
            private List<(PolicyLimit Limit, ToolEntry Owner)> Limits(ToolEntry? entry)
            {
                var limits = new List<(PolicyLimit, ToolEntry)>();
                if (_layer is not null)
                {
                    foreach (PolicyLimit limit in _layer.Limits)
                    {
                        limits.Add((limit, _layer));
                    }
                }

                if (entry is not null)
                {
                    foreach (PolicyLimit limit in entry.Limits)
                    {
                        limits.Add((limit, entry));
                    }
                }

                return limits;
            }

            /// <summary>The checks after the length switch, in spec order, stopping at the first that always holds.</summary>
            private List<(string Check, string Route, string Comment)> FallthroughRoutes(out bool defaultReachable)
            {
                var checks = new List<(string, string, string)>();
                for (int i = 0; i < _policy.Hide.Count; i++)
                {
                    string pattern = _policy.Hide[i].Pattern;
                    if (!PolicyPatterns.IsPattern(pattern))
                    {
                        continue; // resolved in the switch
                    }

                    string check = ByteCheck(pattern);
                    checks.Add((check, HiddenRoute(i), "Hidden by " + Text(_policy.Hide[i].Pointer) + ": " + Text(pattern)));
                    if (check == "true")
                    {
                        defaultReachable = false;
                        return checks;
                    }
                }

                foreach (ToolEntry entry in _patternsBySpecificity)
                {
                    string check = ByteCheck(entry.Name);
                    checks.Add((check, _entryNames[entry], "Pattern entry " + Text(entry.Name)));
                    if (check == "true")
                    {
                        defaultReachable = false;
                        return checks;
                    }
                }

                defaultReachable = true;
                return checks;
            }

            /// <summary>A glob on the UTF-8 name as byte checks: prefix, suffix and contains inline, other shapes through a static GlobPattern.</summary>
            private string ByteCheck(string pattern)
            {
                if (pattern.IndexOf('?') < 0)
                {
                    string[] parts = pattern.Split('*');
                    bool onlyStars = true;
                    foreach (string part in parts)
                    {
                        onlyStars &= part.Length == 0;
                    }

                    if (onlyStars)
                    {
                        return "true";
                    }

                    if (parts.Length == 2)
                    {
                        string prefix = parts[0], suffix = parts[1];
                        if (suffix.Length == 0)
                        {
                            return Memory + "StartsWith(name, " + Utf8(prefix) + ")";
                        }

                        if (prefix.Length == 0)
                        {
                            return Memory + "EndsWith(name, " + Utf8(suffix) + ")";
                        }

                        // Both ends must fit without overlapping ("a*a" does not match "a").
                        int minimum = Encoding.UTF8.GetByteCount(prefix) + Encoding.UTF8.GetByteCount(suffix);
                        return "name.Length >= " + minimum.ToString(CultureInfo.InvariantCulture)
                            + " && " + Memory + "StartsWith(name, " + Utf8(prefix) + ")"
                            + " && " + Memory + "EndsWith(name, " + Utf8(suffix) + ")";
                    }

                    if (parts.Length == 3 && parts[0].Length == 0 && parts[2].Length == 0)
                    {
                        return Memory + "IndexOf(name, " + Utf8(parts[1]) + ") >= 0";
                    }
                }

                return GlobField(pattern) + ".IsMatch(name)";
            }

            private string GlobField(string pattern)
            {
                if (!_globFields.TryGetValue(pattern, out string? field))
                {
                    field = "s_glob" + _globFields.Count.ToString(CultureInfo.InvariantCulture);
                    _globFields.Add(pattern, field);
                    _staticFields.Add("private static readonly " + Runtime + "GlobPattern " + field + " = new " + Runtime + "GlobPattern(" + Literal(pattern) + ");");
                }

                return field;
            }

            private string PathField(ValuePath path)
            {
                var key = new StringBuilder();
                foreach (PathSegment segment in path.Segments)
                {
                    key.Append(segment.Property is null ? "[" + segment.Index.ToString(CultureInfo.InvariantCulture) + "]" : "." + Literal(segment.Property));
                }

                string identity = key.ToString();
                if (!_pathFields.TryGetValue(identity, out string? field))
                {
                    field = "s_path" + _pathFields.Count.ToString(CultureInfo.InvariantCulture);
                    _pathFields.Add(identity, field);
                    var steps = new StringBuilder();
                    foreach (PathSegment segment in path.Segments)
                    {
                        steps.Append(steps.Length == 0 ? string.Empty : ", ");
                        steps.Append(segment.Property is null
                            ? "new " + Runtime + "PathStep(null, " + segment.Index.ToString(CultureInfo.InvariantCulture) + ")"
                            : "new " + Runtime + "PathStep(" + Utf8(segment.Property) + ".ToArray(), -1)");
                    }

                    _staticFields.Add("private static readonly " + Runtime + "ArgumentPath " + field + " = new " + Runtime + "ArgumentPath("
                        + Literal(path.Text) + ", new " + Runtime + "PathStep[] { " + steps + " });");
                }

                return field;
            }

            private string RegexProperty(string pattern)
            {
                int index = _regexPatterns.IndexOf(pattern);
                if (index < 0)
                {
                    index = _regexPatterns.Count;
                    _regexPatterns.Add(pattern);
                }

                string n = index.ToString(CultureInfo.InvariantCulture);
                return "(_regex" + n + " ??= " + Ops + "CreateRegex(" + Literal(pattern) + ", _regexTimeout))";
            }

            private string Value(ValuePath path) => path.Source switch
            {
                ValueSource.Grant => Runtime + "PolicyValue.FromString(call.Grant)",
                ValueSource.Session => Runtime + "PolicyValue.FromString(call.Session)",
                ValueSource.Tool => Runtime + "PolicyValue.FromUtf8String(call.NameUtf8)",
                _ => _blockLocals is not null && _blockLocals.TryGetValue(PathField(path), out string? local)
                    ? local
                    : _reserveSlots is not null && _reserveSlots.TryGetValue(PathField(path), out int slot)
                        ? "slots[" + slot.ToString(CultureInfo.InvariantCulture) + "].ToValue(call.ArgumentsJson)"
                        : Runtime + "ArgumentLookup.Find(call.ArgumentsJson, " + PathField(path) + ")",
            };

            /// <summary>The argument paths a block reads, in order of first use: its rules' (up to the first that always decides), then its limits'.</summary>
            private sealed class BlockArguments
            {
                public BlockArguments(string readerField, List<string> pathFields, bool reserveReads)
                {
                    ReaderField = readerField;
                    PathFields = pathFields;
                    ReserveReads = reserveReads;
                }

                public string ReaderField { get; }

                public List<string> PathFields { get; }

                /// <summary>Whether the block's Reserve method reads slots (a limit has a key or increment_from).</summary>
                public bool ReserveReads { get; }

                public int Slot(string pathField) => PathFields.IndexOf(pathField);
            }

            /// <summary>The one-pass reader of the block deciding <paramref name="entry"/>, or null when it reads fewer than two paths.</summary>
            private BlockArguments? Arguments(ToolEntry? entry)
            {
                string name = BlockName(entry);
                if (_blockArguments.TryGetValue(name, out BlockArguments? known))
                {
                    return known;
                }

                var fields = new List<string>();
                foreach ((PolicyRule rule, _) in Rules(entry))
                {
                    if (rule.When is null)
                    {
                        break;
                    }

                    CollectPaths(rule.When, fields);
                }

                bool reserveReads = false;
                foreach ((PolicyLimit limit, _) in Limits(entry))
                {
                    foreach (ValuePath? path in new[] { limit.Key, limit.IncrementFrom })
                    {
                        if (path is not null && path.Source == ValueSource.Args)
                        {
                            reserveReads = true;
                            AddPath(PathField(path), fields);
                        }
                    }
                }

                BlockArguments? arguments = null;
                if (fields.Count >= 2)
                {
                    // Blocks that read the same paths (the `*` layer's, typically) share one reader.
                    string list = string.Join(", ", fields);
                    if (!_readerFields.TryGetValue(list, out string? field))
                    {
                        field = "s_reader" + _readerFields.Count.ToString(CultureInfo.InvariantCulture);
                        _readerFields.Add(list, field);
                        _staticFields.Add("private static readonly " + Runtime + "ArgumentReader " + field + " = new " + Runtime + "ArgumentReader(" + list + ");");
                    }

                    arguments = new BlockArguments(field, fields, reserveReads);
                    _maxSlots = Math.Max(_maxSlots, fields.Count);
                }

                _blockArguments.Add(name, arguments);
                return arguments;
            }

            private void CollectPaths(Condition condition, List<string> fields)
            {
                switch (condition)
                {
                    case AllCondition all:
                        foreach (Condition inner in all.Conditions) CollectPaths(inner, fields);
                        break;
                    case AnyCondition any:
                        foreach (Condition inner in any.Conditions) CollectPaths(inner, fields);
                        break;
                    case NotCondition not:
                        CollectPaths(not.Condition, fields);
                        break;
                    case TestCondition test when test.Path.Source == ValueSource.Args:
                        AddPath(PathField(test.Path), fields);
                        break;
                }
            }

            private static void AddPath(string field, List<string> fields)
            {
                if (!fields.Contains(field))
                {
                    fields.Add(field);
                }
            }

            /// <summary>Emits the one pass over the arguments, once per block, just before the first statement that needs it.</summary>
            private void EnsureSlotsRead(SourceWriter w)
            {
                if (_currentArguments is null || _slotsRead)
                {
                    return;
                }

                w.Line("ArgumentSlotBuffer slotBuffer = default;");
                w.Line("global::System.Span<" + Runtime + "ArgumentSlot> slots = slotBuffer;");
                w.Line(_currentArguments.ReaderField + ".Read(call.ArgumentsJson, slots); // one pass for "
                    + _currentArguments.PathFields.Count.ToString(CultureInfo.InvariantCulture) + " paths");
                _slotsRead = true;
            }

            /// <summary>
            /// Looks up, into locals, the arguments <paramref name="condition"/> reads that no earlier rule
            /// of the block read: just before the first rule that needs them, so a rule that decides early
            /// never pays for the later rules' arguments.
            /// </summary>
            private void DeclareArguments(SourceWriter w, Condition condition)
            {
                switch (condition)
                {
                    case AllCondition all:
                        foreach (Condition inner in all.Conditions) DeclareArguments(w, inner);
                        break;
                    case AnyCondition any:
                        foreach (Condition inner in any.Conditions) DeclareArguments(w, inner);
                        break;
                    case NotCondition not:
                        DeclareArguments(w, not.Condition);
                        break;
                    case TestCondition test when test.Path.Source == ValueSource.Args:
                        string field = PathField(test.Path);
                        if (!_blockLocals!.ContainsKey(field))
                        {
                            string local = "arg" + field.Substring("s_path".Length);
                            if (_currentArguments is not null)
                            {
                                EnsureSlotsRead(w);
                                w.Line("var " + local + " = slots[" + _currentArguments.Slot(field).ToString(CultureInfo.InvariantCulture)
                                    + "].ToValue(call.ArgumentsJson); // " + Text(test.Path.Text));
                            }
                            else
                            {
                                w.Line("var " + local + " = " + Runtime + "ArgumentLookup.Find(call.ArgumentsJson, " + field + "); // " + Text(test.Path.Text));
                            }

                            _blockLocals.Add(field, local);
                            if (_stringComparedFields is not null && _stringComparedFields.Contains(field))
                            {
                                string plain = "plain" + field.Substring("s_path".Length);
                                w.Line("bool " + plain + " = " + Ops + "IsPlainString(" + local + ");");
                                _plainLocals!.Add(field, plain);
                            }
                        }

                        break;
                }
            }

            /// <summary>A condition as a C# expression of type Truth (Kleene logic through PolicyOps).</summary>
            private string Condition(Condition condition)
            {
                switch (condition)
                {
                    case AllCondition all:
                        return Fold(all.Conditions, "And", "True");
                    case AnyCondition any:
                        return Fold(any.Conditions, "Or", "False");
                    case NotCondition not:
                        return Ops + "Not(" + Condition(not.Condition) + ")";
                    case TestCondition test:
                        return Test(test);
                    default:
                        throw new InvalidOperationException("unknown condition " + condition.GetType().Name);
                }
            }

            private string Fold(EquatableArray<Condition> conditions, string op, string empty)
            {
                if (conditions.Count == 0)
                {
                    return Runtime + "Truth." + empty;
                }

                string expression = Condition(conditions[0]);
                for (int i = 1; i < conditions.Count; i++)
                {
                    expression = Ops + op + "(" + expression + ", " + Condition(conditions[i]) + ")";
                }

                return expression;
            }

            private string Test(TestCondition test)
            {
                string value = Value(test.Path);
                JsonConstant operand = test.Operand;
                if (test.Path.Source == ValueSource.Args && _plainLocals is not null
                    && _plainLocals.TryGetValue(PathField(test.Path), out string? plain)
                    && PlainStringTest(test, value, plain) is { } fast)
                {
                    return fast;
                }

                switch (test.Operator)
                {
                    case ConditionOperator.Eq:
                        return Scalar("Eq", value, operand);
                    case ConditionOperator.Neq:
                        return Scalar("Neq", value, operand);
                    case ConditionOperator.Contains:
                        return Scalar("Contains", value, operand);
                    case ConditionOperator.In:
                    case ConditionOperator.NotIn:
                        return Membership(test.Operator == ConditionOperator.In, value, operand);
                    case ConditionOperator.Lt:
                        return Ops + "Lt(" + value + ", " + Number(operand.Number) + ")";
                    case ConditionOperator.Lte:
                        return Ops + "Lte(" + value + ", " + Number(operand.Number) + ")";
                    case ConditionOperator.Gt:
                        return Ops + "Gt(" + value + ", " + Number(operand.Number) + ")";
                    case ConditionOperator.Gte:
                        return Ops + "Gte(" + value + ", " + Number(operand.Number) + ")";
                    case ConditionOperator.Prefix:
                        return Ops + "Prefix(" + value + ", " + Utf8(operand.String ?? string.Empty) + ")";
                    case ConditionOperator.Suffix:
                        return Ops + "Suffix(" + value + ", " + Utf8(operand.String ?? string.Empty) + ")";
                    case ConditionOperator.Regex:
                        return Ops + "Regex(" + value + ", " + RegexProperty(operand.String ?? string.Empty) + ")";
                    case ConditionOperator.Glob:
                        return Ops + "Glob(" + value + ", " + GlobField(operand.String ?? string.Empty) + ")";
                    case ConditionOperator.Exists:
                        return Ops + "Exists(" + value + ", " + Bool(operand.Boolean) + ")";
                    default:
                        throw new InvalidOperationException("unknown operator " + test.Operator);
                }
            }

            private static string Scalar(string op, string value, JsonConstant operand) => operand.Kind switch
            {
                ConstantKind.String => Ops + op + "(" + value + ", " + Utf8(operand.String ?? string.Empty) + ")",
                ConstantKind.Number => Ops + op + "(" + value + ", " + Number(operand.Number) + ")",
                ConstantKind.Boolean => Ops + op + "(" + value + ", " + Bool(operand.Boolean) + ")",
                ConstantKind.Null => Ops + op + "Null(" + value + ")",
                _ => throw new InvalidOperationException(op + " takes a scalar operand"),
            };

            /// <summary>The string constants an eq/neq/in/not_in test compares with (none: not a string comparison).</summary>
            private static List<string> StringConstants(TestCondition test)
            {
                var constants = new List<string>();
                switch (test.Operator)
                {
                    case ConditionOperator.Eq:
                    case ConditionOperator.Neq:
                        if (test.Operand.Kind == ConstantKind.String)
                        {
                            constants.Add(test.Operand.String ?? string.Empty);
                        }

                        break;
                    case ConditionOperator.In:
                    case ConditionOperator.NotIn:
                        foreach (JsonConstant item in test.Operand.Items)
                        {
                            if (item.Kind == ConstantKind.String && !constants.Contains(item.String ?? string.Empty))
                            {
                                constants.Add(item.String ?? string.Empty);
                            }
                        }

                        break;
                }

                return constants;
            }

            private void CollectStringCompared(Condition condition, HashSet<string> fields)
            {
                switch (condition)
                {
                    case AllCondition all:
                        foreach (Condition inner in all.Conditions) CollectStringCompared(inner, fields);
                        break;
                    case AnyCondition any:
                        foreach (Condition inner in any.Conditions) CollectStringCompared(inner, fields);
                        break;
                    case NotCondition not:
                        CollectStringCompared(not.Condition, fields);
                        break;
                    case TestCondition test when test.Path.Source == ValueSource.Args && StringConstants(test).Count > 0:
                        fields.Add(PathField(test.Path));
                        break;
                }
            }

            /// <summary>
            /// eq/neq/in/not_in with string constants, when the argument is a plain string: the bytes
            /// decide. For a string value, eq of a non-string constant is False (neq True) whatever the
            /// text, so only the string constants matter: in = any equal, not_in = none equal. Otherwise
            /// (escaped, invalid UTF-8, not a string, missing, ambiguous) the general PolicyOps path.
            /// </summary>
            private string? PlainStringTest(TestCondition test, string value, string plain)
            {
                List<string> constants = StringConstants(test);
                if (constants.Count == 0)
                {
                    return null;
                }

                string match;
                if (constants.Count == 1)
                {
                    match = Memory + "SequenceEqual(" + value + ".Raw, " + Utf8(constants[0]) + ")";
                }
                else
                {
                    var keyText = new StringBuilder();
                    foreach (string constant in constants)
                    {
                        keyText.Append(constant.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(constant);
                    }

                    string key = keyText.ToString();
                    if (!_matchMethods.TryGetValue(key, out string? method))
                    {
                        method = "Matches" + _matchMethods.Count.ToString(CultureInfo.InvariantCulture);
                        _matchMethods.Add(key, method);
                        _matchMethodConstants.Add(constants.ToArray());
                    }

                    match = method + "(" + value + ".Raw)";
                }

                bool positive = test.Operator is ConditionOperator.Eq or ConditionOperator.In;
                string general = test.Operator is ConditionOperator.In or ConditionOperator.NotIn
                    ? Membership(test.Operator == ConditionOperator.In, value, test.Operand)
                    : Scalar(test.Operator == ConditionOperator.Eq ? "Eq" : "Neq", value, test.Operand);
                return "(" + plain + " ? (" + match + " ? " + Runtime + "Truth." + (positive ? "True" : "False") + " : " + Runtime + "Truth." + (positive ? "False" : "True") + ") : " + general + ")";
            }

            /// <summary>A method that says whether plain UTF-8 text is one of <paramref name="constants"/>: a switch on the length, then the bytes.</summary>
            private static void WriteMatchMethod(SourceWriter w, string name, string[] constants)
            {
                var byLength = new SortedDictionary<int, List<string>>();
                foreach (string constant in constants)
                {
                    int length = Encoding.UTF8.GetByteCount(constant);
                    if (!byLength.TryGetValue(length, out List<string>? group))
                    {
                        byLength[length] = group = new List<string>();
                    }

                    group.Add(constant);
                }

                w.Line("/// <summary>Whether plain UTF-8 text is one of " + Xml(string.Join(", ", Array.ConvertAll(constants, Literal))) + ".</summary>");
                w.Open("private static bool " + name + "(global::System.ReadOnlySpan<byte> text)");
                w.Open("switch (text.Length)");
                foreach (KeyValuePair<int, List<string>> group in byLength)
                {
                    var tests = new List<string>();
                    foreach (string constant in group.Value)
                    {
                        tests.Add(Memory + "SequenceEqual(text, " + Utf8(constant) + ")");
                    }

                    w.Line("case " + group.Key.ToString(CultureInfo.InvariantCulture) + ": return " + string.Join(" || ", tests) + ";");
                }

                w.Line("default: return false;");
                w.Close();
                w.Close();
            }

            /// <summary><c>in</c> is the Kleene OR of <c>eq</c> over the list, <c>not_in</c> the AND of <c>neq</c>.</summary>
            private static string Membership(bool isIn, string value, JsonConstant operand)
            {
                if (operand.Items.Count == 0)
                {
                    // Nothing to compare: missing → False, ambiguous → Unknown, present → False for
                    // in, True for not_in. Exists(true) ∧ Exists(false) is exactly the former.
                    return isIn
                        ? Ops + "And(" + Ops + "Exists(" + value + ", true), " + Ops + "Exists(" + value + ", false))"
                        : Ops + "Exists(" + value + ", true)";
                }

                string expression = Scalar(isIn ? "Eq" : "Neq", value, operand.Items[0]);
                for (int i = 1; i < operand.Items.Count; i++)
                {
                    expression = Ops + (isIn ? "Or" : "And") + "(" + expression + ", " + Scalar(isIn ? "Eq" : "Neq", value, operand.Items[i]) + ")";
                }

                return expression;
            }

            /// <summary>The name of the block deciding a tool that selects <paramref name="entry"/> (null: the default block).</summary>
            private string BlockName(ToolEntry? entry) => entry is null ? "Default" : _entryNames[entry];

            private string Allow(ToolEntry? entry, string ruleExpression) =>
                Limits(entry).Count == 0
                    ? DecisionType + ".Allow(" + ruleExpression + ")"
                    : "Reserve" + BlockName(entry) + "(in call, " + ruleExpression + (Arguments(entry) is { ReserveReads: true } ? ", slots" : string.Empty) + ")";

            /// <summary>
            /// The reason a deny or approve rule shows when it writes none. The parser resolves every
            /// reason into the model; this serves hand-made models, as the interpreter's fallback does.
            /// </summary>
            private static string RuleReason(PolicyRule rule, ToolEntry owner) => rule.Reason
                ?? (PolicyPatterns.IsLayer(owner.Name)
                    ? (rule.Action == ToolAction.Deny ? PolicyText.LayerDenyReason : PolicyText.LayerApproveReason)
                    : (rule.Action == ToolAction.Deny ? PolicyText.DenyReason(owner.Name) : PolicyText.ApproveReason(owner.Name)));

            private void WriteEntry(SourceWriter w, ToolEntry entry)
            {
                List<(PolicyRule Rule, ToolEntry Owner)> rules = Rules(entry);

                // What the block enforces, in words.
                w.Line("// " + (entry.IsPattern ? "Tools matching " : "Tool ") + Text(entry.Name) + " (" + Text(entry.Pointer) + ")"
                    + (entry.Hidden ? ": hidden, so denied whatever the call." : ":"));
                if (entry.Hidden)
                {
                    WriteBlockAttributes(w);
                    w.Open("private " + DecisionType + " Evaluate" + BlockName(entry) + "(in " + Runtime + "ToolCall call, bool approved)");
                    w.Line("return " + DecisionType + ".Deny(" + Literal(entry.Pointer + "/hide") + ", " + Literal(HiddenReason) + ");");
                    w.Close();
                    return;
                }

                string pointer = Literal(entry.ActionIsExplicit ? entry.Pointer + "/action" : entry.Pointer);
                string final = entry.Action switch
                {
                    ToolAction.Deny => DecisionType + ".Deny(" + pointer + ", " + Literal(entry.Reason ?? PolicyText.DenyReason(entry.Name)) + ")",
                    ToolAction.Approve => "approved ? " + Allow(entry, pointer) + " : " + DecisionType + ".ApprovalRequired(" + pointer + ", " + Literal(entry.Reason ?? PolicyText.ApproveReason(entry.Name)) + ")",
                    _ => Allow(entry, pointer),
                };
                WriteBlock(w, entry, rules, ActionWord(entry.Action) + (entry.Reason is null ? string.Empty : " (" + Text(entry.Reason) + ")"), final);
            }

            /// <summary>
            /// The block for a tool no entry matches, when there is a `*` layer (spec steps 4-6 with no
            /// entry): the layer's rules first, then the default; an allowed call reserves the layer's limits.
            /// </summary>
            private void WriteDefault(SourceWriter w)
            {
                w.Line("// Any tool no entry matches (" + Text(DefaultPointer) + "), with the \"*\" layer:");
                string final = _policy.Default == DefaultAction.Allow ? "allow" : "deny (" + Text(_policy.DefaultReason) + ")";
                WriteBlock(w, null, Rules(null), final, DefaultActionDecision());
            }

            /// <summary>One decision block: its rules in order (first match wins), then <paramref name="final"/>, then the limits.</summary>
            private void WriteBlock(SourceWriter w, ToolEntry? entry, List<(PolicyRule Rule, ToolEntry Owner)> rules, string finalWords, string final)
            {
                string name = BlockName(entry);
                List<(PolicyLimit Limit, ToolEntry Owner)> limits = Limits(entry);
                foreach ((PolicyRule rule, _) in rules)
                {
                    w.Line("//   " + ActionWord(rule.Action) + (rule.When is null ? " always" : " when " + Words(rule.When))
                        + (rule.Reason is null ? string.Empty : " (" + Text(rule.Reason) + ")") + " [" + Text(rule.Pointer) + "]");
                }

                w.Line("//   " + (rules.Count > 0 ? "otherwise " : string.Empty) + finalWords);
                foreach ((PolicyLimit limit, _) in limits)
                {
                    w.Line("//   when allowed: " + LimitWords(limit) + " [" + Text(limit.Pointer) + "]");
                }

                WriteBlockAttributes(w);
                w.Open("private " + DecisionType + " Evaluate" + name + "(in " + Runtime + "ToolCall call, bool approved)");
                _blockLocals = new Dictionary<string, string>(StringComparer.Ordinal);
                _stringComparedFields = new HashSet<string>(StringComparer.Ordinal);
                _plainLocals = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach ((PolicyRule rule, _) in rules)
                {
                    if (rule.When is not null)
                    {
                        CollectStringCompared(rule.When, _stringComparedFields);
                    }
                }

                BlockArguments? arguments = Arguments(entry);
                _currentArguments = arguments;
                _slotsRead = false;
                bool reserveReads = arguments is { ReserveReads: true };
                bool reachable = true;
                foreach ((PolicyRule rule, ToolEntry owner) in rules)
                {
                    string decision = rule.Action switch
                    {
                        ToolAction.Deny => DecisionType + ".Deny(" + Literal(rule.Pointer) + ", " + Literal(RuleReason(rule, owner)) + ")",
                        ToolAction.Approve => "approved ? " + Allow(entry, Literal(rule.Pointer)) + " : " + DecisionType + ".ApprovalRequired(" + Literal(rule.Pointer) + ", " + Literal(RuleReason(rule, owner)) + ")",
                        _ => Allow(entry, Literal(rule.Pointer)),
                    };

                    if (reserveReads && rule.Action != ToolAction.Deny)
                    {
                        EnsureSlotsRead(w); // the decision may call Reserve, which takes the slots
                    }

                    if (rule.When is null)
                    {
                        w.Line("return " + decision + ";");
                        reachable = false;
                        break;
                    }

                    DeclareArguments(w, rule.When);
                    w.Line("if (" + Ops + "Fires(" + Condition(rule.When) + ", " + Language + "ToolAction." + rule.Action + ")) return " + decision + ";");
                }

                _blockLocals = null;
                _stringComparedFields = null;
                _plainLocals = null;

                if (reachable)
                {
                    if (reserveReads && final.Contains("Reserve" + name + "("))
                    {
                        EnsureSlotsRead(w);
                    }

                    w.Line("return " + final + ";");
                }

                _currentArguments = null;

                w.Close();

                if (limits.Count > 0)
                {
                    _maxLimits = Math.Max(_maxLimits, limits.Count);
                    w.Line();
                    WriteReserve(w, name, limits, reserveReads ? arguments : null);
                }
            }

            private void WriteReserve(SourceWriter w, string name, List<(PolicyLimit Limit, ToolEntry Owner)> limits, BlockArguments? arguments)
            {
                w.Line("/// <summary>Reserves every limit of the block, all or nothing (spec step 6).</summary>");
                if (arguments is null)
                {
                    w.Open("private " + DecisionType + " Reserve" + name + "(in " + Runtime + "ToolCall call, string rule)");
                }
                else
                {
                    // The block's one pass already read the keys and amounts.
                    w.Open("private " + DecisionType + " Reserve" + name + "(in " + Runtime + "ToolCall call, string rule, global::System.ReadOnlySpan<" + Runtime + "ArgumentSlot> slots)");
                    _reserveSlots = new Dictionary<string, int>(StringComparer.Ordinal);
                    for (int i = 0; i < arguments.PathFields.Count; i++)
                    {
                        _reserveSlots[arguments.PathFields[i]] = i;
                    }
                }

                w.Line("CounterRequestBuffer buffer = default;");
                w.Line("global::System.Span<" + Runtime + "CounterRequest> requests = buffer;");
                for (int i = 0; i < limits.Count; i++)
                {
                    PolicyLimit limit = limits[i].Limit;
                    string index = i.ToString(CultureInfo.InvariantCulture);
                    string scope = limit.Scope switch
                    {
                        LimitScope.Session => "call.Session",
                        LimitScope.Global => "\"\"",
                        _ => "call.Grant",
                    };
                    string key = limit.Key is null ? "null" : "LimitArguments.KeyText(" + Value(limit.Key) + ")";
                    string amount = Number(limit.Increment);
                    if (limit.IncrementFrom is not null)
                    {
                        w.Line("if (!" + "LimitArguments.TryGetAmount(" + Value(limit.IncrementFrom) + ", out double amount" + index + ")) return "
                            + DecisionType + ".Deny(" + Literal(limit.Pointer) + ", " + Literal(PolicyText.InvalidIncrementReason(limit)) + ");");
                        amount = "amount" + index;
                    }

                    w.Line("requests[" + index + "] = new " + Runtime + "CounterRequest(" + Literal(limit.Counter) + ", "
                        + limit.Window.Seconds.ToString(CultureInfo.InvariantCulture) + ", " + Language + "WindowAlignment." + limit.Window.Alignment + ", "
                        + scope + ", " + key + ", " + amount + ", " + Number(limit.Max) + ");");
                }

                w.Line("if (_counters.TryReserve(requests.Slice(0, " + limits.Count.ToString(CultureInfo.InvariantCulture)
                    + "), _time.GetUtcNow(), out " + Runtime + "CounterReservation reservation, out int refused, out global::System.TimeSpan retryAfter))");
                w.Line("{");
                w.Indent();
                w.Line("return " + DecisionType + ".Allow(rule, reservation);");
                w.Close();
                w.Line();
                w.Open("switch (refused)");
                for (int i = 0; i < limits.Count; i++)
                {
                    PolicyLimit limit = limits[i].Limit;
                    w.Line((i == limits.Count - 1 ? "default" : "case " + i.ToString(CultureInfo.InvariantCulture)) + ": return "
                        + DecisionType + ".RateLimited(" + Literal(limit.Pointer) + ", " + Literal(limit.Reason) + ", " + Literal(limit.Counter) + ", retryAfter);");
                }

                w.Close();
                w.Close();
                _reserveSlots = null;
            }

            /// <summary>A condition in words, for the block comment.</summary>
            private static string Words(Condition condition)
            {
                switch (condition)
                {
                    case AllCondition all:
                        return Join(all.Conditions, " and ", "always");
                    case AnyCondition any:
                        return Join(any.Conditions, " or ", "never");
                    case NotCondition not:
                        return "not " + Words(not.Condition);
                    case TestCondition test:
                        return Text(test.Path.Text) + " " + test.Operator.ToString().ToLowerInvariant() + " " + Constant(test.Operand);
                    default:
                        return "?";
                }
            }

            private static string Join(EquatableArray<Condition> conditions, string separator, string empty)
            {
                if (conditions.Count == 0)
                {
                    return empty;
                }

                var words = new StringBuilder(conditions.Count > 1 ? "(" : string.Empty);
                for (int i = 0; i < conditions.Count; i++)
                {
                    words.Append(i == 0 ? string.Empty : separator).Append(Words(conditions[i]));
                }

                return words.Append(conditions.Count > 1 ? ")" : string.Empty).ToString();
            }

            private static string Constant(JsonConstant constant)
            {
                switch (constant.Kind)
                {
                    case ConstantKind.String:
                        return Text(constant.String ?? string.Empty);
                    case ConstantKind.Number:
                        return constant.Number.ToString("R", CultureInfo.InvariantCulture);
                    case ConstantKind.Boolean:
                        return Bool(constant.Boolean);
                    case ConstantKind.Null:
                        return "null";
                    default:
                        var items = new StringBuilder("[");
                        for (int i = 0; i < constant.Items.Count; i++)
                        {
                            items.Append(i == 0 ? string.Empty : ", ").Append(Constant(constant.Items[i]));
                        }

                        return items.Append(']').ToString();
                }
            }
        }
    }
}
