using System.Security.Cryptography;
using System.Text;

namespace PolicyCompiler.Gateway.Enforcement.Approvals;

/// <summary>
/// The secret that protects the approvals admin API (<c>--admin-token-file FILE</c>, else
/// <see cref="EnvironmentVariable"/>). Only its SHA-256 is kept, and a presented token is hashed and
/// compared in constant time: neither the length nor a prefix of the secret leaks through timing.
/// </summary>
public sealed class AdminToken
{
    /// <summary>The environment variable that supplies the token when no file is given.</summary>
    public const string EnvironmentVariable = "POLICYCOMPILER_ADMIN_TOKEN";

    /// <summary>The shortest token accepted (a guessable token would make approvals meaningless).</summary>
    public const int MinimumLength = 16;

    private readonly byte[] _sha256;

    private AdminToken(string token) => _sha256 = SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>Makes a token from its text (surrounding whitespace dropped).</summary>
    /// <exception cref="FormatException">Shorter than <see cref="MinimumLength"/> characters.</exception>
    public static AdminToken FromText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string token = text.Trim();
        if (token.Length < MinimumLength)
        {
            throw new FormatException($"the admin token must be at least {MinimumLength} characters (e.g. `openssl rand -hex 32`)");
        }

        return new AdminToken(token);
    }

    /// <summary>
    /// The token from <paramref name="file"/> when given, else from <see cref="EnvironmentVariable"/>, else null
    /// (the approvals API then refuses every request and says why).
    /// </summary>
    /// <exception cref="IOException">The file cannot be read.</exception>
    /// <exception cref="FormatException">The token is too short.</exception>
    public static AdminToken? Load(string? file)
    {
        if (file is not null)
        {
            return FromText(File.ReadAllText(file));
        }

        return Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } text ? FromText(text) : null;
    }

    /// <summary>Whether an <c>Authorization</c> header value is <c>Bearer</c> and this token.</summary>
    public bool Matches(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Span<byte> presented = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(authorization.AsSpan(7).Trim().ToString()), presented);
        return CryptographicOperations.FixedTimeEquals(presented, _sha256);
    }
}
