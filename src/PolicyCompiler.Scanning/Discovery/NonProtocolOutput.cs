using Microsoft.Extensions.Logging;

namespace PolicyCompiler.Scanning.Discovery;

/// <summary>
/// Notices what the SDK's transport could not parse as JSON-RPC (it logs and skips such lines), so a
/// scan that times out can say "it printed this, which is not MCP" instead of only "no answer". The
/// first such line is kept, cut short, for the message. Thread-safe.
/// </summary>
internal sealed class NonProtocolOutput : ILoggerFactory, ILogger
{
    private const int SampleLength = 200;
    private readonly Lock _gate = new();
    private int _count;
    private string? _sample;

    /// <summary>Lines the transport could not parse.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>The first of them (when the SDK logged its text), cut to 200 characters.</summary>
    public string? Sample
    {
        get
        {
            lock (_gate)
            {
                return _sample;
            }
        }
    }

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => this;

    /// <inheritdoc/>
    public void AddProvider(ILoggerProvider provider)
    {
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }

    /// <inheritdoc/>
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    /// <inheritdoc/>
    public bool IsEnabled(LogLevel logLevel) => true;

    /// <inheritdoc/>
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        // The SDK logs "... transport message parsing failed" once per line: with the line's text
        // ("...Sensitive") when trace is enabled, as it is here, else without.
        if (eventId.Name is not { } name || !name.Contains("MessageParseFailed", StringComparison.Ordinal))
        {
            return;
        }
        string? text = null;
        if (state is IReadOnlyList<KeyValuePair<string, object?>> values)
        {
            foreach (KeyValuePair<string, object?> value in values)
            {
                if (value.Key == "Message" && value.Value is string message)
                {
                    text = message.Length > SampleLength ? message[..SampleLength] + "…" : message;
                }
            }
        }
        lock (_gate)
        {
            _count++;
            _sample ??= text;
        }
    }
}
