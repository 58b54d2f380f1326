namespace PolicyCompiler.State;

/// <summary>
/// A durable or shared counter store could not answer in time (unreachable, failing or slower than
/// <c>--state-timeout</c>). Thrown by <see cref="Resilience.FailModeCounterStore"/> in fail-closed mode; the
/// gateway turns it into a deny whose reason is <see cref="Exception.Message"/>.
/// </summary>
public sealed class CounterStoreUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What failed, in words an agent can read (no secrets).</param>
    /// <param name="innerException">The store's own error.</param>
    public CounterStoreUnavailableException(string message, Exception? innerException = null)
        : base(message, innerException)
    {
    }
}
