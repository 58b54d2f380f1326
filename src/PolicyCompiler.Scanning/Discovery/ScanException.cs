namespace PolicyCompiler.Scanning.Discovery;

/// <summary>Why a scan failed.</summary>
public enum ScanFailure
{
    /// <summary>The server process could not be started, or exited before answering.</summary>
    ServerDidNotStart,
    /// <summary>The server answered, but not as an MCP server (or not within the timeout).</summary>
    NotMcp,
    /// <summary>The server speaks MCP but offers no tools.</summary>
    NoTools,
    /// <summary>Listing the tools failed or did not finish within the timeout.</summary>
    ListFailed,
}

/// <summary>A scan that could not produce a tool list; the message says what happened and what to check.</summary>
public sealed class ScanException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ScanException(ScanFailure failure, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Failure = failure;
    }

    /// <summary>What failed.</summary>
    public ScanFailure Failure { get; }
}
