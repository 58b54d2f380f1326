using System.Text;

namespace PolicyCompiler.Generators;

/// <summary>Builds indented C# text (four spaces a level, <c>\n</c> line ends on every OS, so output is byte-identical).</summary>
internal sealed class SourceWriter
{
    private readonly StringBuilder _text = new();
    private int _indent;

    public void Line(string line = "")
    {
        if (line.Length > 0)
        {
            _text.Append(' ', _indent * 4).Append(line);
        }

        _text.Append('\n');
    }

    public void Open(string line)
    {
        Line(line);
        Line("{");
        _indent++;
    }

    public void Close(string closing = "}")
    {
        _indent--;
        Line(closing);
    }

    /// <summary>Appends text written by another writer (already indented).</summary>
    public void Append(string text) => _text.Append(text);

    public void Indent() => _indent++;

    public void Outdent() => _indent--;

    public override string ToString() => _text.ToString();
}
