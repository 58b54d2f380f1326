using System.Text.Json.Nodes;

namespace PolicyCompiler.EndToEnd.Tests.Infrastructure;

/// <summary>The EKS-like server's record of every tools/call that reached it (server-side proof).</summary>
internal sealed class CallLog : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"eks-like-calls-{Guid.NewGuid():N}.jsonl");

    public IReadOnlyList<(string Tool, JsonNode? Arguments)> Calls()
    {
        if (!File.Exists(Path)) return [];
        return File.ReadAllLines(Path)
            .Where(l => l.Length > 0)
            .Select(l => JsonNode.Parse(l)!)
            .Select(n => ((string)n["tool"]!, n["arguments"]))
            .ToList();
    }

    public int CountOf(string tool) => Calls().Count(c => c.Tool == tool);

    public void Dispose()
    {
        try { File.Delete(Path); } catch (IOException) { }
    }
}
