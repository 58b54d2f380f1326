using Microsoft.Extensions.Logging;

namespace PolicyCompiler.Gateway.Diagnostics;

/// <summary>
/// A minimal logger that writes one line per message to stderr: <c>gateway: level: message</c>.
/// Our own rather than Microsoft.Extensions.Logging.Console so the native binary carries no options,
/// configuration binding or background console queue, and stdout is never touched.
/// </summary>
public sealed class StderrLoggerProvider : ILoggerProvider, ILogger
{
    private readonly LogLevel _minimum;
    private readonly TextWriter _output;
    private readonly string _prefix;
    private readonly Lock _gate = new();

    /// <summary>Creates a logger writing messages at <paramref name="minimum"/> or above.</summary>
    /// <param name="minimum">The least severe level written.</param>
    /// <param name="prefix">Put before every line (the program's name).</param>
    /// <param name="output">Where to write (stderr when null).</param>
    public StderrLoggerProvider(LogLevel minimum, string prefix, TextWriter? output = null)
    {
        _minimum = minimum;
        _prefix = prefix;
        _output = output ?? Console.Error;
    }

    /// <inheritdoc/>
    public ILogger CreateLogger(string categoryName) => this;

    /// <inheritdoc/>
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    /// <inheritdoc/>
    public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= _minimum;

    /// <inheritdoc/>
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }

        string level = logLevel switch
        {
            LogLevel.Trace => "trace",
            LogLevel.Debug => "debug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warning",
            LogLevel.Error => "error",
            _ => "critical",
        };
        string message = formatter(state, exception);
        lock (_gate)
        {
            _output.Write(_prefix);
            _output.Write(": ");
            _output.Write(level);
            _output.Write(": ");
            _output.WriteLine(message);
            if (exception is not null)
            {
                _output.Write(_prefix);
                _output.Write(":   ");
                _output.WriteLine(exception.Message);
            }

            _output.Flush();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
    }
}
