using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Parses value paths: <c>args</c>, <c>args.a.b</c>, <c>args.items[0]</c>, <c>args["key.with.dots"]</c>,
/// <c>grant</c>, <c>session</c>, <c>tool</c>. A property step after a dot is any run of characters
/// other than <c>.</c>, <c>[</c>, <c>]</c> and <c>"</c>; any other name is written in brackets and
/// double quotes, where <c>\"</c> and <c>\\</c> stand for a quote and a backslash.
/// </summary>
public static class PolicyPaths
{
    /// <summary>Parses <paramref name="text"/>; on failure <paramref name="error"/> says why.</summary>
    public static bool TryParse(string text, out ValuePath? path, out string? error)
    {
        path = null;
        int i = 0;
        while (i < text.Length && text[i] != '.' && text[i] != '[') i++;
        string root = text.Substring(0, i);
        ValueSource source;
        switch (root)
        {
            case "args": source = ValueSource.Args; break;
            case "grant": source = ValueSource.Grant; break;
            case "session": source = ValueSource.Session; break;
            case "tool": source = ValueSource.Tool; break;
            default:
                error = "a path starts with args, grant, session or tool";
                return false;
        }

        var segments = new List<PathSegment>();
        while (i < text.Length)
        {
            if (text[i] == '.')
            {
                int start = ++i;
                while (i < text.Length && text[i] != '.' && text[i] != '[' && text[i] != ']' && text[i] != '"') i++;
                if (i == start)
                {
                    error = $"expected a property name at character {start + 1}";
                    return false;
                }
                if (i < text.Length && (text[i] == ']' || text[i] == '"'))
                {
                    error = $"unexpected '{text[i]}' at character {i + 1}; write names with such characters as [\"name\"]";
                    return false;
                }
                segments.Add(new PathSegment(text.Substring(start, i - start), -1));
            }
            else if (text[i] == '[')
            {
                i++;
                if (i < text.Length && text[i] == '"')
                {
                    i++;
                    var name = new StringBuilder();
                    bool closed = false;
                    while (i < text.Length)
                    {
                        char c = text[i++];
                        if (c == '\\' && i < text.Length && (text[i] == '"' || text[i] == '\\')) { name.Append(text[i++]); continue; }
                        if (c == '"') { closed = true; break; }
                        name.Append(c);
                    }
                    if (!closed || i >= text.Length || text[i] != ']')
                    {
                        error = "a quoted name must end with \"]";
                        return false;
                    }
                    i++;
                    segments.Add(new PathSegment(name.ToString(), -1));
                }
                else
                {
                    int start = i;
                    while (i < text.Length && text[i] >= '0' && text[i] <= '9') i++;
                    string digits = text.Substring(start, i - start);
                    if (digits.Length == 0 || i >= text.Length || text[i] != ']')
                    {
                        error = $"expected an array index or a quoted name in brackets at character {start + 1}";
                        return false;
                    }
                    if ((digits.Length > 1 && digits[0] == '0') || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int index))
                    {
                        error = $"invalid array index '{digits}'";
                        return false;
                    }
                    i++;
                    segments.Add(new PathSegment(null, index));
                }
            }
            else
            {
                error = $"unexpected '{text[i]}' at character {i + 1}";
                return false;
            }
        }

        if (source != ValueSource.Args && segments.Count > 0)
        {
            error = $"'{root}' is a string and has no parts";
            return false;
        }
        path = new ValuePath(source, new EquatableArray<PathSegment>(segments.ToArray()), text);
        error = null;
        return true;
    }

    /// <summary>A key that identifies the value a path reads, whatever its spelling (<c>args.a</c> = <c>args["a"]</c>).</summary>
    public static string Identity(ValuePath path)
    {
        var key = new StringBuilder();
        key.Append((int)path.Source);
        foreach (var segment in path.Segments)
        {
            if (segment.Property is null) key.Append('[').Append(segment.Index.ToString(CultureInfo.InvariantCulture)).Append(']');
            else key.Append('.').Append(segment.Property.Length.ToString(CultureInfo.InvariantCulture)).Append(':').Append(segment.Property);
        }
        return key.ToString();
    }
}
