using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace PolicyCompiler.Gateway.Transport.StreamableHttp;

/// <summary>The outcome of checking a request's bearer token.</summary>
internal enum GrantCheck : byte
{
    /// <summary>A known, unexpired token: the request has its grant.</summary>
    Granted,
    /// <summary>No <c>Authorization: Bearer</c> header.</summary>
    Missing,
    /// <summary>A token that matches no grant.</summary>
    Unknown,
    /// <summary>A grant's token after its expiry.</summary>
    Expired,
}

/// <summary>
/// The grants file (<c>--grants FILE</c>, docs/http.md "Grants"): grant name → SHA-256 of its bearer
/// token, with an optional expiry. Only hashes are stored, so the file is not a secret.
/// <code>
/// {
///   "ci-agent":  "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
///   "oncall":    { "token": "sha256:…", "expires": "2026-12-31T00:00:00Z" }
/// }
/// </code>
/// A presented token is hashed and compared with every grant's hash in constant time (no early exit,
/// <see cref="CryptographicOperations.FixedTimeEquals"/>), so timing reveals neither a near miss nor
/// which grant matched.
/// </summary>
public sealed class GrantTable
{
    private const string HashPrefix = "sha256:";

    private readonly Entry[] _entries;

    private GrantTable(Entry[] entries) => _entries = entries;

    /// <summary>How many grants the file holds.</summary>
    public int Count => _entries.Length;

    /// <summary>Parses a grants file's text; throws <see cref="FormatException"/> with the reason when it is invalid.</summary>
    public static GrantTable Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var entries = new List<Entry>();
        try
        {
            using JsonDocument document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException("the grants file must be a JSON object: grant name → \"sha256:<hex>\" or { \"token\": \"sha256:<hex>\", \"expires\": \"ISO 8601\" }");
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty grant in document.RootElement.EnumerateObject())
            {
                if (grant.Name.Length == 0 || !names.Add(grant.Name))
                {
                    throw new FormatException($"grant '{grant.Name}': empty or duplicate name");
                }

                string? hash;
                DateTimeOffset? expires = null;
                if (grant.Value.ValueKind == JsonValueKind.String)
                {
                    hash = grant.Value.GetString();
                }
                else if (grant.Value.ValueKind == JsonValueKind.Object)
                {
                    hash = grant.Value.TryGetProperty("token", out JsonElement token) && token.ValueKind == JsonValueKind.String ? token.GetString() : null;
                    if (grant.Value.TryGetProperty("expires", out JsonElement expiry))
                    {
                        if (expiry.ValueKind != JsonValueKind.String || !expiry.TryGetDateTimeOffset(out DateTimeOffset parsed))
                        {
                            throw new FormatException($"grant '{grant.Name}': expires must be an ISO 8601 date-time string");
                        }

                        expires = parsed;
                    }
                }
                else
                {
                    hash = null;
                }

                entries.Add(new Entry(grant.Name, ParseHash(grant.Name, hash), expires));
            }
        }
        catch (JsonException e)
        {
            throw new FormatException("the grants file is not valid JSON: " + e.Message, e);
        }

        return new GrantTable(entries.ToArray());
    }

    /// <summary>Reads and parses a grants file.</summary>
    public static GrantTable Load(string path) => Parse(File.ReadAllText(path));

    /// <summary>A fresh random token (256 bits, base64url) and the grants-file line that admits it.</summary>
    public static (string Token, string GrantsLine) NewGrant(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Span<byte> random = stackalloc byte[32];
        RandomNumberGenerator.Fill(random);
        string token = "pcg_" + Base64Url.EncodeToString(random);
        string line = $"{JsonSerializerLiteral(name)}: \"{HashPrefix}{HashHex(token)}\"";
        return (token, line);
    }

    /// <summary>The lowercase hex SHA-256 of a token's UTF-8 bytes (what the grants file stores).</summary>
    public static string HashHex(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>Checks an <c>Authorization</c> header value; <paramref name="grant"/> is set when granted.</summary>
    internal GrantCheck Check(string? authorization, DateTimeOffset now, out string grant)
    {
        grant = string.Empty;
        const string Scheme = "Bearer ";
        if (authorization is null || authorization.Length <= Scheme.Length ||
            !authorization.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return GrantCheck.Missing;
        }

        ReadOnlySpan<char> token = authorization.AsSpan(Scheme.Length).Trim();
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        int max = Encoding.UTF8.GetMaxByteCount(token.Length);
        Span<byte> utf8 = max <= 512 ? stackalloc byte[512] : new byte[max];
        int length = Encoding.UTF8.GetBytes(token, utf8);
        SHA256.HashData(utf8[..length], hash);

        // Every entry is compared, whatever matched first: the time taken does not depend on which grant matched.
        Entry? match = null;
        foreach (Entry entry in _entries)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, entry.Hash))
            {
                match = entry;
            }
        }

        if (match is null)
        {
            return GrantCheck.Unknown;
        }

        if (match.Expires is { } expires && now >= expires)
        {
            return GrantCheck.Expired;
        }

        grant = match.Name;
        return GrantCheck.Granted;
    }

    private static byte[] ParseHash(string name, string? value)
    {
        if (value is null || !value.StartsWith(HashPrefix, StringComparison.Ordinal) || value.Length != HashPrefix.Length + 64)
        {
            throw new FormatException($"grant '{name}': the token must be given as \"sha256:<64 hex digits>\" (run `policyc grant new {name}`)");
        }

        try
        {
            return Convert.FromHexString(value.AsSpan(HashPrefix.Length));
        }
        catch (FormatException)
        {
            throw new FormatException($"grant '{name}': the token hash is not hexadecimal");
        }
    }

    private static string JsonSerializerLiteral(string value)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStringValue(value);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private sealed record Entry(string Name, byte[] Hash, DateTimeOffset? Expires);
}
