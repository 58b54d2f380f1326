using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;

namespace PolicyCompiler.Policy.Language;

/// <summary>
/// Reads and validates a policy file: strict JSON (duplicate keys, unknown fields and wrong types
/// are errors), then the semantic checks (unreachable rules, impossible conditions, conflicting
/// counters). Every problem is a <see cref="PolicyDiagnostic"/> with line and column.
/// Compiled into both the runtime library and the source generator.
/// </summary>
public static class PolicyParser
{
    /// <summary>Parses and validates <paramref name="utf8"/>, read from <paramref name="filePath"/>.</summary>
    public static PolicyParseResult Parse(string filePath, byte[] utf8)
    {
        if (filePath is null) throw new ArgumentNullException(nameof(filePath));
        if (utf8 is null) throw new ArgumentNullException(nameof(utf8));

        // Three stages: bytes → JSON tree (syntax, duplicates), tree → model (fields, types,
        // operands, paths), model → semantic checks (validator). Each stage reports what it can, so
        // one run lists every problem; any error withholds the model.
        int start = utf8.Length >= 3 && utf8[0] == 0xEF && utf8[1] == 0xBB && utf8[2] == 0xBF ? 3 : 0;
        var source = new PolicySourceText(utf8, start);
        var report = new DiagnosticBag(filePath, source);

        PolicyDocument? document = null;
        var root = PolicyJsonReader.Read(utf8, start, source, report);
        if (root is not null)
        {
            var spans = new PolicySpans();
            var reader = new PolicyModelReader(report, spans);
            string text = Encoding.UTF8.GetString(utf8, start, utf8.Length - start);
            document = reader.ReadDocument(root, DefaultName(filePath), Sha256Hex(utf8, start), text);
            if (document is not null) PolicyValidator.Validate(document, spans, report);
        }
        return new PolicyParseResult(report.HasErrors ? null : document, report.ToSortedArray());
    }

    /// <summary>
    /// The name a policy gets when it writes none: the file name without its extension, with
    /// characters outside <c>[A-Za-z0-9_.-]</c> replaced by <c>_</c> and cut to 64 characters.
    /// </summary>
    public static string DefaultName(string filePath)
    {
        string stem = Path.GetFileNameWithoutExtension(filePath);
        var name = new StringBuilder(Math.Min(stem.Length, 64));
        foreach (char c in stem)
        {
            if (name.Length == 64) break;
            name.Append(PolicyModelReader.IsNameChar(c) ? c : '_');
        }
        return name.Length == 0 ? "policy" : name.ToString();
    }

    /// <summary>
    /// The policy's hash (docs/policy-language.md, "Policy hash"): lower-case hex SHA-256 of the
    /// file's UTF-8 bytes after a leading byte-order mark, if any. The BOM is left out because the
    /// compiler hands the source generator decoded text without it: hashing from
    /// <paramref name="textStart"/> gives <c>policyc</c> and a built gateway the same hash.
    /// </summary>
    private static string Sha256Hex(byte[] utf8, int textStart)
    {
        using var sha = SHA256.Create();
        byte[] hash = sha.ComputeHash(utf8, textStart, utf8.Length - textStart);
        var hex = new StringBuilder(hash.Length * 2);
        foreach (byte b in hash) hex.Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        return hex.ToString();
    }
}
