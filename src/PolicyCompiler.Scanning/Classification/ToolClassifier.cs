using System.Collections.Frozen;
using System.Text;

namespace PolicyCompiler.Scanning.Classification;

/// <summary>
/// Classifies a tool as read, write or destructive (docs/scan.md, "Classification"). Signals, strongest
/// first, and the first that decides wins:
/// <list type="number">
/// <item>MCP annotations: <c>readOnlyHint: true</c> → read; <c>destructiveHint: true</c> → destructive;
/// <c>destructiveHint: false</c> with <c>readOnlyHint: false</c> → write. A lone hint only rules a class
/// out (<c>readOnlyHint: false</c> → not read; <c>destructiveHint: false</c> → not destructive) and the
/// weaker signals choose among the rest.</item>
/// <item>The name's verb: the name is split into words (snake_case, kebab-case, dotted, camelCase,
/// PascalCase, acronyms); a leading verb decides, else the riskiest verb anywhere in the name.</item>
/// <item>The description's verb, the same way, over its first sentence (only unambiguous verbs
/// count after the first word: "a list of", "a set of", "clear errors" are not verbs there).</item>
/// <item>Nothing: the MCP defaults for a tool without annotations apply (not read-only, destructive),
/// so an unknown tool needs approval until a human says otherwise.</item>
/// </list>
/// </summary>
public static class ToolClassifier
{
    // A verb's class, and whether the word is also a common noun or adjective ("list", "set", "clear"),
    // which makes it evidence only as the first word of a description.
    private readonly record struct Verb(string BaseForm, ToolClass Class, bool Ambiguous);

    private static readonly FrozenDictionary<string, Verb> Verbs = BuildVerbTable();

    /// <summary>Classifies <paramref name="tool"/>.</summary>
    public static ToolClassification Classify(ScannedTool tool)
    {
        ArgumentNullException.ThrowIfNull(tool);
        return Classify(tool.Name, tool.Description, tool.Hints);
    }

    /// <summary>Classifies a tool from its name, description and annotation hints.</summary>
    public static ToolClassification Classify(string name, string? description, ToolHints hints)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(hints);

        // 1. Annotations. MCP: destructiveHint is meaningful only when readOnlyHint is false.
        string notes = HintNotes(hints);
        if (hints.ReadOnly == true)
        {
            return new(ToolClass.Read, ClassificationSignal.Annotations, "readOnlyHint=true", notes);
        }
        if (hints.Destructive == true)
        {
            return new(ToolClass.Destructive, ClassificationSignal.Annotations, Stated(hints), notes);
        }
        if (hints.Destructive == false && hints.ReadOnly == false)
        {
            return new(ToolClass.Write, ClassificationSignal.Annotations, "readOnlyHint=false, destructiveHint=false", notes);
        }

        // A lone hint rules one class out; the weaker signals pick among the others.
        bool readRuledOut = hints.ReadOnly == false;
        bool destructiveRuledOut = hints.Destructive == false;
        string constraint = readRuledOut || destructiveRuledOut ? " (annotations: " + Stated(hints) + ")" : "";

        // 2. The name's verb. 3. The description's verb.
        if (FindVerb(SplitWords(name), isDescription: false, readRuledOut, destructiveRuledOut) is { } nameVerb)
        {
            return new(nameVerb.Class, ClassificationSignal.Name, $"verb '{nameVerb.Word}' in the name{constraint}", notes);
        }
        if (description is not null &&
            FindVerb(SplitWords(FirstSentence(description)), isDescription: true, readRuledOut, destructiveRuledOut) is { } descriptionVerb)
        {
            return new(descriptionVerb.Class, ClassificationSignal.Description, $"verb '{descriptionVerb.Word}' in the description{constraint}", notes);
        }

        // 4. What MCP presumes of the hints that are absent: readOnlyHint false, destructiveHint true.
        if (readRuledOut || destructiveRuledOut)
        {
            ToolClass presumed = destructiveRuledOut ? ToolClass.Write : ToolClass.Destructive;
            return new(presumed, ClassificationSignal.Annotations, Stated(hints) + (destructiveRuledOut ? "" : "; MCP presumes destructiveHint=true"), notes);
        }
        return new(ToolClass.Destructive, ClassificationSignal.Default, "no annotations and no known verb: MCP presumes a tool may be destructive", notes);
    }

    /// <summary>
    /// Splits a tool name or a sentence into lower-case words: at every character that is not a letter
    /// or digit, between a lower-case letter and an upper-case one (<c>getPod</c>), before the last capital
    /// of an acronym (<c>HTTPServer</c> → http, server), and between letters and digits.
    /// </summary>
    public static IReadOnlyList<string> SplitWords(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = new List<string>();
        var word = new StringBuilder();
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsLetterOrDigit(c))
            {
                Flush(words, word);
                continue;
            }
            if (word.Length > 0)
            {
                char previous = text[i - 1];
                bool lowerToUpper = char.IsUpper(c) && (char.IsLower(previous) || char.IsDigit(previous));
                bool acronymEnd = char.IsUpper(c) && char.IsUpper(previous) && i + 1 < text.Length && char.IsLower(text[i + 1]);
                bool letterDigit = char.IsDigit(c) != char.IsDigit(previous);
                if (lowerToUpper || acronymEnd || letterDigit)
                {
                    Flush(words, word);
                }
            }
            word.Append(char.ToLowerInvariant(c));
        }
        Flush(words, word);
        return words;
    }

    private static void Flush(List<string> words, StringBuilder word)
    {
        if (word.Length > 0)
        {
            words.Add(word.ToString());
            word.Clear();
        }
    }

    /// <summary>A leading verb decides; otherwise the riskiest verb among the words.</summary>
    private static (ToolClass Class, string Word)? FindVerb(IReadOnlyList<string> words, bool isDescription, bool readRuledOut, bool destructiveRuledOut)
    {
        bool Allowed(ToolClass c) => !(c == ToolClass.Read && readRuledOut) && !(c == ToolClass.Destructive && destructiveRuledOut);

        if (words.Count > 0 && Verbs.TryGetValue(words[0], out Verb first) && Allowed(first.Class))
        {
            return (first.Class, words[0]);
        }
        (ToolClass Class, string Word)? riskiest = null;
        for (int i = 1; i < words.Count; i++)
        {
            if (Verbs.TryGetValue(words[i], out Verb verb) && Allowed(verb.Class) && !(isDescription && verb.Ambiguous) &&
                (riskiest is null || verb.Class > riskiest.Value.Class))
            {
                riskiest = (verb.Class, words[i]);
            }
        }
        return riskiest;
    }

    /// <summary>The text up to the first sentence end (". ", a newline, or the end): later sentences describe details, errors and caveats.</summary>
    private static string FirstSentence(string description)
    {
        string text = description.Trim();
        int end = text.Length;
        int newline = text.IndexOf('\n', StringComparison.Ordinal);
        if (newline >= 0) end = newline;
        int stop = text.IndexOf(". ", StringComparison.Ordinal);
        if (stop >= 0 && stop < end) end = stop;
        return text[..end];
    }

    private static string Stated(ToolHints hints)
    {
        var parts = new List<string>(2);
        if (hints.ReadOnly is { } readOnly) parts.Add("readOnlyHint=" + (readOnly ? "true" : "false"));
        if (hints.Destructive is { } destructive) parts.Add("destructiveHint=" + (destructive ? "true" : "false"));
        return string.Join(", ", parts);
    }

    /// <summary>idempotentHint and openWorldHint never change the class, but a reviewer wants to see them.</summary>
    private static string HintNotes(ToolHints hints)
    {
        var notes = new List<string>(2);
        if (hints.Idempotent == true) notes.Add("idempotent");
        if (hints.OpenWorld == true) notes.Add("open world");
        return string.Join(", ", notes);
    }

    private static FrozenDictionary<string, Verb> BuildVerbTable()
    {
        // Base forms; "?" marks a word that is also a common noun or adjective.
        string[] read = ["get", "list?", "describe", "search?", "read", "find", "query?", "fetch", "show", "view?", "lookup", "inspect",
            "browse", "retrieve", "count?", "explain", "return", "echo?", "check?", "validate", "compute", "calculate", "summarize", "export?", "download"];
        string[] write = ["create", "update", "put", "add", "set?", "write", "edit?", "insert", "patch?", "apply", "upload", "modify", "rename",
            "move?", "copy?", "post?", "send", "save", "append", "replace", "merge", "enable", "disable", "start?", "stop?", "restart",
            "deploy", "run?", "execute", "invoke", "push", "publish", "assign", "attach", "register", "import", "install", "toggle", "change?",
            "upsert", "commit?", "fork?", "approve", "scale", "tag?", "link", "connect"];
        string[] destructive = ["delete", "remove", "terminate", "destroy", "drop?", "purge", "erase", "kill", "truncate", "wipe", "uninstall",
            "revoke", "overwrite", "reset", "deregister", "unregister", "clear?", "prune", "rm", "del", "detach", "unlink", "evict", "shutdown", "reboot"];

        var table = new Dictionary<string, Verb>(StringComparer.Ordinal);
        foreach (var (words, cls) in new[] { (read, ToolClass.Read), (write, ToolClass.Write), (destructive, ToolClass.Destructive) })
        {
            foreach (string written in words)
            {
                bool ambiguous = written.EndsWith('?');
                string verb = ambiguous ? written[..^1] : written;
                foreach (string form in Inflections(verb))
                {
                    // A form shared by two verbs keeps the riskier reading.
                    if (!table.TryGetValue(form, out Verb existing) || existing.Class < cls)
                    {
                        table[form] = new Verb(verb, cls, ambiguous);
                    }
                }
            }
        }
        return table.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The base form and its regular inflections (3rd person, past, gerund), over-generated on purpose: a spurious form is harmless.</summary>
    private static IEnumerable<string> Inflections(string verb)
    {
        yield return verb;
        char last = verb[^1];
        if (last == 'y' && verb.Length > 1 && !"aeiou".Contains(verb[^2], StringComparison.Ordinal))
        {
            string stem = verb[..^1];
            yield return stem + "ies";
            yield return stem + "ied";
            yield return verb + "ing";
            yield break;
        }
        if (last == 'e')
        {
            yield return verb + "s";
            yield return verb + "d";
            yield return verb[..^1] + "ing";
            yield break;
        }
        yield return verb + "s";
        yield return verb + "es";
        yield return verb + "ed";
        yield return verb + "ing";
        // Consonant doubling: stop → stopped, set → setting, drop → dropping.
        yield return verb + last + "ed";
        yield return verb + last + "ing";
    }
}
