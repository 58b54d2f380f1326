using System.Buffers.Text;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace LatencyDriver;

/// <summary>How the driver reaches one configuration: a child process spoken to over its stdin/stdout, or an HTTP endpoint served by a child process.</summary>
internal sealed record ConfigSpec(string Name, string Baseline, string Reference, string Kind, string Url, string[] Command)
{
    public bool IsHttp => Kind == "http";

    /// <summary>
    /// A copy with every <c>{port}</c> in the URL and arguments replaced by a port that is free on 127.0.0.1 now;
    /// called before each start, so a restarted peer never finds its old port in TIME_WAIT trouble.
    /// </summary>
    public ConfigSpec WithFreePort()
    {
        if (!Url.Contains("{port}", StringComparison.Ordinal))
        {
            return this;
        }
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        string port = ((System.Net.IPEndPoint)probe.LocalEndPoint!).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return this with
        {
            Url = Url.Replace("{port}", port, StringComparison.Ordinal),
            Command = Array.ConvertAll(Command, a => a.Replace("{port}", port, StringComparison.Ordinal)),
        };
    }

    /// <summary>Parses one line of the configuration file: NAME, BASELINE, REFERENCE, KIND, URL, COMMAND, ARGS... separated by tabs.</summary>
    public static ConfigSpec Parse(string line)
    {
        string[] f = line.Split('\t');
        if (f.Length < 6 || (f[3] != "stdio" && f[3] != "http"))
        {
            throw new FormatException($"bad configuration line (NAME BASELINE REFERENCE stdio|http URL COMMAND ARGS..., tab-separated): {line}");
        }
        return new ConfigSpec(f[0], f[1], f[2], f[3], f[4], f[5..]);
    }

    public Process Start()
    {
        var start = new ProcessStartInfo(Command[0])
        {
            UseShellExecute = false,
            RedirectStandardInput = !IsHttp,
            // An HTTP server's stdout is its log (mcp-proxy prints there): drained and dropped, so it
            // neither mixes with the report nor blocks the server on a full pipe.
            RedirectStandardOutput = true,
            RedirectStandardError = false,
        };
        for (int i = 1; i < Command.Length; i++)
        {
            start.ArgumentList.Add(Command[i]);
        }
        Process process = Process.Start(start) ?? throw new InvalidOperationException($"{Name}: could not start {Command[0]}");
        if (IsHttp)
        {
            process.OutputDataReceived += static (_, _) => { };
            process.BeginOutputReadLine();
        }
        return process;
    }
}

/// <summary>Pre-encoded JSON-RPC messages; a tools/call is prefix + id + suffix so no string is built per call.</summary>
internal static class Messages
{
    public const string ProtocolVersion = "2025-06-18";
    public const string EchoText = "hello from the latency harness";

    public static readonly byte[] CallPrefix = "{\"jsonrpc\":\"2.0\",\"id\":"u8.ToArray();
    public static readonly byte[] CallSuffix = Encoding.UTF8.GetBytes(
        ",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"" + EchoText + "\"}}}");
    public static readonly byte[] EchoBytes = Encoding.UTF8.GetBytes(EchoText);

    public static byte[] Initialize(long id) => Encoding.UTF8.GetBytes(
        "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"" + ProtocolVersion +
        "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"latency-driver\",\"version\":\"1.0.0\"}}}");

    public static readonly byte[] Initialized = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"u8.ToArray();

    public static byte[] ToolsList(long id) => Encoding.UTF8.GetBytes("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/list\"}");

    /// <summary>Writes a tools/call with <paramref name="id"/> into <paramref name="buffer"/>; returns its length (no newline).</summary>
    public static int WriteCall(byte[] buffer, long id)
    {
        CallPrefix.CopyTo(buffer, 0);
        int n = CallPrefix.Length;
        Utf8Formatter.TryFormat(id, buffer.AsSpan(n), out int written);
        n += written;
        CallSuffix.CopyTo(buffer, n);
        return n + CallSuffix.Length;
    }

    /// <summary>What <see cref="ResponseId"/> returns for the server's own notifications and requests (logging, list_changed): skipped.</summary>
    public const long ServerMessage = long.MinValue;

    /// <summary>
    /// Reads the top-level <c>id</c> of a response and checks that it is a successful one (a <c>result</c>, no
    /// <c>isError: true</c>, the echoed text present): a proxy that blocked, mangled or lost the call fails the run.
    /// </summary>
    public static long ResponseId(ReadOnlySpan<byte> json, bool expectEcho)
    {
        var reader = new Utf8JsonReader(json);
        long id = -1;
        bool result = false;
        bool method = false;
        reader.Read();
        while (reader.Read() && reader.CurrentDepth >= 1)
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
            {
                bool isId = reader.ValueTextEquals("id"u8);
                bool isResult = reader.ValueTextEquals("result"u8);
                method |= reader.ValueTextEquals("method"u8);
                reader.Read();
                if (isId && reader.TokenType == JsonTokenType.Number)
                {
                    id = reader.GetInt64();
                }
                else if (isResult)
                {
                    result = true;
                }
                reader.Skip();
            }
        }
        if (method)
        {
            return ServerMessage;
        }
        if (!result)
        {
            throw new InvalidDataException("not a successful response: " + Encoding.UTF8.GetString(json));
        }
        if (expectEcho && (json.IndexOf("\"isError\":true"u8) >= 0 || json.IndexOf(EchoBytes) < 0))
        {
            throw new InvalidDataException("the echo tool's answer is missing or an error: " + Encoding.UTF8.GetString(json));
        }
        return id;
    }
}

/// <summary>Newline-delimited reading over a stream with one reusable buffer (no string per line).</summary>
internal sealed class LineReader(Stream stream)
{
    private byte[] _buffer = new byte[1 << 16];
    private int _start;
    private int _end;

    /// <summary>The next line without its newline; valid until the next call.</summary>
    public ReadOnlySpan<byte> ReadLine()
    {
        while (true)
        {
            int nl = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var line = new ReadOnlySpan<byte>(_buffer, _start, nl);
                _start += nl + 1;
                return line;
            }
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length)
            {
                Array.Resize(ref _buffer, _buffer.Length * 2);
            }
            int read = stream.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
            {
                throw new EndOfStreamException("the server closed its output");
            }
            _end += read;
        }
    }
}

/// <summary>One MCP session over a child's stdin/stdout.</summary>
internal sealed class StdioSession : IDisposable
{
    private readonly Stream _in;
    private readonly LineReader _out;
    private readonly byte[] _send = new byte[512];
    private long _nextId = 1;

    public StdioSession(Process process)
    {
        Process = process;
        _in = process.StandardInput.BaseStream;
        _out = new LineReader(process.StandardOutput.BaseStream);
    }

    public Process Process { get; }

    /// <summary>The next line that is a response, skipping the server's notifications and requests.</summary>
    private ReadOnlySpan<byte> NextResponse(bool expectEcho, out long id)
    {
        while (true)
        {
            ReadOnlySpan<byte> line = _out.ReadLine();
            id = Messages.ResponseId(line, expectEcho);
            if (id != Messages.ServerMessage)
            {
                return line;
            }
        }
    }

    public void Initialize()
    {
        Send(Messages.Initialize(_nextId++));
        NextResponse(expectEcho: false, out _);
        Send(Messages.Initialized);
        Send(Messages.ToolsList(_nextId++));
        ReadOnlySpan<byte> tools = NextResponse(expectEcho: false, out _);
        if (tools.IndexOf("\"echo\""u8) < 0)
        {
            throw new InvalidDataException("tools/list does not offer echo: " + Encoding.UTF8.GetString(tools));
        }
    }

    private void Send(byte[] message)
    {
        message.CopyTo(_send, 0);
        _send[message.Length] = (byte)'\n';
        _in.Write(_send, 0, message.Length + 1);
        _in.Flush();
    }

    /// <summary>One call after another; each latency in Stopwatch ticks.</summary>
    public void Sequential(long[] latencies)
    {
        for (int i = 0; i < latencies.Length; i++)
        {
            long id = _nextId++;
            int n = Messages.WriteCall(_send, id);
            _send[n] = (byte)'\n';
            long t0 = Stopwatch.GetTimestamp();
            _in.Write(_send, 0, n + 1);
            _in.Flush();
            NextResponse(expectEcho: true, out long got);
            latencies[i] = Stopwatch.GetTimestamp() - t0;
            if (got != id)
            {
                throw new InvalidDataException($"answer to {got} while waiting for {id}");
            }
        }
    }

    /// <summary>
    /// <paramref name="inFlight"/> calls pipelined over the one connection, matched by id (answers may come in
    /// any order); returns the wall-clock ticks for all of them.
    /// </summary>
    public long Concurrent(long[] latencies, int inFlight)
    {
        int count = latencies.Length;
        long baseId = _nextId;
        _nextId += count;
        var sentAt = new long[count];
        using var slots = new SemaphoreSlim(inFlight, inFlight);
        Exception? readerFault = null;
        var reader = new Thread(() =>
        {
            try
            {
                for (int done = 0; done < count; done++)
                {
                    NextResponse(expectEcho: true, out long id);
                    long now = Stopwatch.GetTimestamp();
                    long index = id - baseId;
                    if (index < 0 || index >= count)
                    {
                        throw new InvalidDataException($"answer to unknown id {id}");
                    }
                    latencies[index] = now - Volatile.Read(ref sentAt[index]);
                    slots.Release();
                }
            }
            catch (Exception e)
            {
                readerFault = e;
                slots.Release(inFlight);
            }
        }) { IsBackground = true, Name = "stdio reader" };
        long start = Stopwatch.GetTimestamp();
        reader.Start();
        for (int i = 0; i < count && readerFault is null; i++)
        {
            slots.Wait();
            int n = Messages.WriteCall(_send, baseId + i);
            _send[n] = (byte)'\n';
            Volatile.Write(ref sentAt[i], Stopwatch.GetTimestamp());
            _in.Write(_send, 0, n + 1);
            _in.Flush();
        }
        reader.Join();
        if (readerFault is not null)
        {
            throw new InvalidDataException("concurrent run failed: " + readerFault.Message, readerFault);
        }
        return Stopwatch.GetTimestamp() - start;
    }

    public void Dispose()
    {
        try
        {
            _in.Dispose(); // end of input: a gateway shuts its server down and exits
            if (!Process.WaitForExit(3000))
            {
                Process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            // already gone
        }
        Process.Dispose();
    }
}

/// <summary>
/// One HTTP/1.1 keep-alive connection to a Streamable HTTP endpoint, raw over a socket (no HttpClient), so
/// the driver's own cost stays in the microseconds. Handles Content-Length and chunked bodies, JSON and SSE answers.
/// </summary>
internal sealed class HttpConnection : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly byte[] _head;
    private readonly byte[] _send = new byte[2048];
    private byte[] _buffer = new byte[1 << 16];
    private int _start;
    private int _end;
    private byte[] _body = new byte[1 << 16];

    public HttpConnection(Uri url, string? sessionId)
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        _socket.Connect(url.Host, url.Port);
        _stream = new NetworkStream(_socket, ownsSocket: true);
        var head = new StringBuilder();
        head.Append("POST ").Append(url.PathAndQuery).Append(" HTTP/1.1\r\nHost: ").Append(url.Authority)
            .Append("\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n");
        if (sessionId is not null)
        {
            head.Append("Mcp-Session-Id: ").Append(sessionId).Append("\r\nMCP-Protocol-Version: ").Append(Messages.ProtocolVersion).Append("\r\n");
        }
        head.Append("Content-Length: ");
        _head = Encoding.ASCII.GetBytes(head.ToString());
    }

    /// <summary>The Mcp-Session-Id of the last answer, if it had one.</summary>
    public string? SessionId { get; private set; }

    public int Status { get; private set; }

    /// <summary>POSTs <paramref name="body"/> and returns the JSON-RPC message of the answer (empty for 202).</summary>
    public ReadOnlySpan<byte> Post(ReadOnlySpan<byte> body)
    {
        _head.CopyTo(_send, 0);
        int n = _head.Length;
        Utf8Formatter.TryFormat(body.Length, _send.AsSpan(n), out int w);
        n += w;
        "\r\n\r\n"u8.CopyTo(_send.AsSpan(n));
        n += 4;
        body.CopyTo(_send.AsSpan(n));
        n += body.Length;
        _stream.Write(_send, 0, n);
        return ReadResponse();
    }

    public ReadOnlySpan<byte> Call(long id)
    {
        int n = Messages.WriteCall(_callBuffer, id);
        return Post(_callBuffer.AsSpan(0, n));
    }

    private readonly byte[] _callBuffer = new byte[512];

    private ReadOnlySpan<byte> ReadResponse()
    {
        ReadOnlySpan<byte> status = Line();
        if (status.Length < 12 || !Utf8Parser.TryParse(status[9..12], out int code, out _))
        {
            throw new InvalidDataException("not an HTTP answer: " + Encoding.ASCII.GetString(status));
        }
        Status = code;
        long contentLength = -1;
        bool chunked = false;
        bool sse = false;
        while (true)
        {
            ReadOnlySpan<byte> h = Line();
            if (h.IsEmpty)
            {
                break;
            }
            int colon = h.IndexOf((byte)':');
            if (colon < 0)
            {
                continue;
            }
            ReadOnlySpan<byte> name = h[..colon];
            ReadOnlySpan<byte> value = h[(colon + 1)..].Trim((byte)' ');
            if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
            {
                Utf8Parser.TryParse(value, out contentLength, out _);
            }
            else if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
            {
                chunked = value.IndexOf("chunked"u8) >= 0;
            }
            else if (Ascii.EqualsIgnoreCase(name, "content-type"u8))
            {
                sse = value.IndexOf("text/event-stream"u8) >= 0;
            }
            else if (Ascii.EqualsIgnoreCase(name, "mcp-session-id"u8))
            {
                SessionId = Encoding.ASCII.GetString(value);
            }
        }
        int length = 0;
        if (chunked)
        {
            while (true)
            {
                ReadOnlySpan<byte> size = Line();
                int semi = size.IndexOf((byte)';');
                if (!Utf8Parser.TryParse(semi >= 0 ? size[..semi] : size, out int chunk, out _, 'x'))
                {
                    throw new InvalidDataException("bad chunk size");
                }
                if (chunk == 0)
                {
                    while (!Line().IsEmpty)
                    {
                        // trailers
                    }
                    break;
                }
                Take(chunk, ref length);
                Line();
            }
        }
        else if (contentLength > 0)
        {
            Take((int)contentLength, ref length);
        }
        else if (contentLength < 0 && code != 202 && code != 204)
        {
            throw new InvalidDataException($"answer {code} without a length (connection-delimited bodies are not supported)");
        }
        if (code >= 300)
        {
            throw new InvalidDataException($"HTTP {code}: " + Encoding.UTF8.GetString(_body, 0, length));
        }
        var message = new ReadOnlySpan<byte>(_body, 0, length);
        return sse ? LastData(message) : message;
    }

    /// <summary>The last <c>data:</c> line of an SSE body that carries a response (the answer comes after any notifications).</summary>
    private static ReadOnlySpan<byte> LastData(ReadOnlySpan<byte> events)
    {
        ReadOnlySpan<byte> found = default;
        while (!events.IsEmpty)
        {
            int nl = events.IndexOf((byte)'\n');
            ReadOnlySpan<byte> line = nl >= 0 ? events[..nl] : events;
            events = nl >= 0 ? events[(nl + 1)..] : default;
            line = line.TrimEnd((byte)'\r');
            if (line.StartsWith("data:"u8))
            {
                ReadOnlySpan<byte> data = line[5..].TrimStart((byte)' ');
                if (data.IndexOf("\"id\""u8) >= 0)
                {
                    found = data;
                }
            }
        }
        if (found.IsEmpty)
        {
            throw new InvalidDataException("an SSE answer without a response");
        }
        return found;
    }

    private void Take(int count, ref int length)
    {
        if (_body.Length < length + count)
        {
            Array.Resize(ref _body, Math.Max(_body.Length * 2, length + count));
        }
        while (count > 0)
        {
            if (_start == _end)
            {
                Fill();
            }
            int take = Math.Min(count, _end - _start);
            Buffer.BlockCopy(_buffer, _start, _body, length, take);
            _start += take;
            length += take;
            count -= take;
        }
    }

    private ReadOnlySpan<byte> Line()
    {
        while (true)
        {
            int nl = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var line = new ReadOnlySpan<byte>(_buffer, _start, nl).TrimEnd((byte)'\r');
                _start += nl + 1;
                return line;
            }
            Fill();
        }
    }

    private void Fill()
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }
        int read = _stream.Read(_buffer, _end, _buffer.Length - _end);
        if (read == 0)
        {
            throw new EndOfStreamException("the HTTP server closed the connection");
        }
        _end += read;
    }

    public void Dispose() => _stream.Dispose();
}

/// <summary>One MCP session over Streamable HTTP: initialized once, then any number of keep-alive connections share it.</summary>
internal sealed class HttpSession : IDisposable
{
    private readonly Uri _url;
    private long _nextId = 1;
    private HttpConnection _main;

    private readonly bool _ownsProcess;

    /// <summary>A session with the server <paramref name="process"/> serves at <paramref name="url"/>; disposing it stops the process when <paramref name="ownsProcess"/>.</summary>
    public HttpSession(Process process, Uri url, bool ownsProcess = true)
    {
        Process = process;
        _url = url;
        _main = null!;
        _ownsProcess = ownsProcess;
    }

    public Process Process { get; }

    public string? SessionId { get; private set; }

    /// <summary>Connects (retrying while the server is still starting) and initializes; returns when the initialize answer arrived.</summary>
    public void Initialize(TimeSpan patience)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(patience.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                var probe = new HttpConnection(_url, null);
                Messages.ResponseId(probe.Post(Messages.Initialize(_nextId++)), expectEcho: false);
                SessionId = probe.SessionId;
                probe.Dispose();
                break;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline && !Process.HasExited)
            {
                Thread.Sleep(1);
            }
        }
        _main = new HttpConnection(_url, SessionId);
        _main.Post(Messages.Initialized);
        ReadOnlySpan<byte> tools = _main.Post(Messages.ToolsList(_nextId++));
        if (tools.IndexOf("\"echo\""u8) < 0)
        {
            throw new InvalidDataException("tools/list does not offer echo: " + Encoding.UTF8.GetString(tools));
        }
    }

    public void Sequential(long[] latencies)
    {
        // A fresh keep-alive connection per batch, primed with one untimed call: between rounds the
        // connection idles while the other configurations run, longer than Node's default 5 s
        // keep-alive timeout, and a client in real use would not be measuring a reconnect.
        _main.Dispose();
        _main = new HttpConnection(_url, SessionId);
        long prime = Interlocked.Increment(ref _nextId) - 1;
        Messages.ResponseId(_main.Call(prime), expectEcho: true);
        Run(_main, latencies, 0, latencies.Length, Interlocked.Add(ref _nextId, latencies.Length) - latencies.Length);
    }

    private static void Run(HttpConnection connection, long[] latencies, int from, int to, long baseId)
    {
        for (int i = from; i < to; i++)
        {
            long id = baseId + i;
            long t0 = Stopwatch.GetTimestamp();
            long got = Messages.ResponseId(connection.Call(id), expectEcho: true);
            latencies[i] = Stopwatch.GetTimestamp() - t0;
            if (got != id)
            {
                throw new InvalidDataException($"answer to {got} for request {id}");
            }
        }
    }

    /// <summary><paramref name="inFlight"/> keep-alive connections (HTTP/1.1 has no pipelining in practice), one call at a time each.</summary>
    public long Concurrent(long[] latencies, int inFlight)
    {
        long baseId = Interlocked.Add(ref _nextId, latencies.Length) - latencies.Length;
        var connections = new HttpConnection[inFlight];
        for (int c = 0; c < inFlight; c++)
        {
            connections[c] = new HttpConnection(_url, SessionId);
        }
        var threads = new Thread[inFlight];
        Exception? fault = null;
        using var go = new ManualResetEventSlim();
        int per = latencies.Length / inFlight;
        for (int c = 0; c < inFlight; c++)
        {
            int from = c * per;
            int to = c == inFlight - 1 ? latencies.Length : from + per;
            HttpConnection connection = connections[c];
            threads[c] = new Thread(() =>
            {
                go.Wait();
                try
                {
                    Run(connection, latencies, from, to, baseId);
                }
                catch (Exception e)
                {
                    fault = e;
                }
            }) { IsBackground = true };
            threads[c].Start();
        }
        long start = Stopwatch.GetTimestamp();
        go.Set();
        foreach (Thread t in threads)
        {
            t.Join();
        }
        long elapsed = Stopwatch.GetTimestamp() - start;
        foreach (HttpConnection c in connections)
        {
            c.Dispose();
        }
        if (fault is not null)
        {
            throw new InvalidDataException("concurrent run failed: " + fault.Message, fault);
        }
        return elapsed;
    }

    public void Dispose()
    {
        _main?.Dispose();
        if (!_ownsProcess)
        {
            return;
        }

        try
        {
            Process.Kill(entireProcessTree: true);
            Process.WaitForExit(3000);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        Process.Dispose();
    }
}
