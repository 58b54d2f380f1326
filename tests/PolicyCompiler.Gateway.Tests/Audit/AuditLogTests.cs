using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PolicyCompiler.Gateway.Audit;
using PolicyCompiler.Policy.Runtime;
using PolicyCompiler.Gateway.Tests.TestSupport;

namespace PolicyCompiler.Gateway.Tests.Audit;

public sealed class AuditLogTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("pc-audit-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private AuditLog Open(string file = "audit.jsonl", int capacity = 8192, bool includeArguments = false) =>
        AuditLog.Open(Path.Combine(_directory, file), new AuditLogOptions
        {
            GatewayName = "eks-gateway",
            PolicySha256 = new string('b', 64),
            Capacity = capacity,
            IncludeArguments = includeArguments,
        });

    private string[] Lines(string file = "audit.jsonl") => File.ReadAllLines(Path.Combine(_directory, file));

    [Fact]
    public async Task GracefulStop_LosesNoRecord()
    {
        // A small queue forces the hot path to wait for the writer: still every record is written.
        AuditLog audit = Open(capacity: 4);
        var policy = new FakeEvaluator();
        policy.Denied.Add("rm");
        var gateway = new GatewayHarness(policy, audit: audit);
        const int calls = 300;
        for (int i = 0; i < calls; i++)
        {
            await gateway.ClientSendAsync("{\"jsonrpc\":\"2.0\",\"id\":" + i + ",\"method\":\"tools/call\",\"params\":{\"name\":\"rm\",\"arguments\":{\"i\":" + i + "}}}");
        }

        for (int i = 0; i < calls; i++)
        {
            Assert.NotNull(await gateway.ClientReceiveAsync());
        }

        await gateway.CloseClientAsync();
        await gateway.CloseUpstreamAsync();
        await gateway.Run;
        await audit.DisposeAsync();

        string[] lines = Lines();
        Assert.Equal(calls, lines.Length);
        for (int i = 0; i < calls; i++)
        {
            using JsonDocument line = JsonDocument.Parse(lines[i]);
            Assert.Equal(i, line.RootElement.GetProperty("id").GetInt32());
        }
    }

    [Fact]
    public async Task DecisionAndUpstreamLines_CarryTheDocumentedFields()
    {
        AuditLog audit = Open(includeArguments: true);
        var policy = new FakeEvaluator();
        policy.RateLimited.Add("limited");
        await using (var gateway = new GatewayHarness(policy, audit: audit))
        {
            await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list","arguments":{ "b" : 2, "a" : "x" }}}""");
            await gateway.UpstreamReceiveAsync();
            await gateway.UpstreamSendAsync("""{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}""");
            await gateway.ClientReceiveAsync();
            await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"limited"}}""");
            await gateway.ClientReceiveAsync();
        }

        await audit.DisposeAsync();
        string[] lines = Lines();
        Assert.Equal(3, lines.Length);

        using JsonDocument allow = JsonDocument.Parse(lines[0]);
        JsonElement a = allow.RootElement;
        Assert.Equal("decision", a.GetProperty("event").GetString());
        Assert.Equal("eks-gateway", a.GetProperty("gateway").GetString());
        Assert.Equal(new string('b', 64), a.GetProperty("policySha256").GetString());
        Assert.Equal("s1", a.GetProperty("session").GetString());
        Assert.Equal("alice", a.GetProperty("grant").GetString());
        Assert.Equal("list", a.GetProperty("tool").GetString());
        Assert.Equal("allow", a.GetProperty("decision").GetString());
        Assert.Equal("forwarded", a.GetProperty("action").GetString());
        Assert.Equal("/tools/list", a.GetProperty("rule").GetString());
        Assert.Equal("""{"a":"x","b":2}""", a.GetProperty("arguments").GetRawText());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("""{"a":"x","b":2}"""u8)), a.GetProperty("argumentsSha256").GetString());
        Assert.True(a.GetProperty("decisionNs").GetInt64() >= 0);
        Assert.EndsWith("Z", a.GetProperty("time").GetString());

        using JsonDocument upstream = JsonDocument.Parse(lines[1]);
        Assert.Equal("upstream", upstream.RootElement.GetProperty("event").GetString());
        Assert.Equal("list", upstream.RootElement.GetProperty("tool").GetString());
        Assert.Equal("tool_error", upstream.RootElement.GetProperty("outcome").GetString());
        Assert.Equal(1, upstream.RootElement.GetProperty("id").GetInt32());

        using JsonDocument limited = JsonDocument.Parse(lines[2]);
        Assert.Equal("rate_limited", limited.RootElement.GetProperty("decision").GetString());
        Assert.Equal("blocked", limited.RootElement.GetProperty("action").GetString());
        Assert.Equal("rate", limited.RootElement.GetProperty("counter").GetString());
        Assert.Equal(13, limited.RootElement.GetProperty("retryAfterSeconds").GetInt32());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData("{}"u8)), limited.RootElement.GetProperty("argumentsSha256").GetString());
    }

    [Fact]
    public async Task SameArgumentsWrittenDifferently_HashTheSame()
    {
        AuditLog audit = Open();
        await using (var gateway = new GatewayHarness(new FakeEvaluator(), audit: audit))
        {
            await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"x":{"q":"\u00e9","p":[1,2]},"a":true}}}""");
            await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t","arguments":{ "a" : true , "x" : { "p" : [1, 2], "q" : "é" } }}}""");
            await gateway.UpstreamReceiveAsync();
            await gateway.UpstreamReceiveAsync();
        }

        await audit.DisposeAsync();
        string[] hashes = Lines().Select(l => JsonDocument.Parse(l).RootElement).Where(e => e.GetProperty("event").GetString() == "decision")
            .Select(e => e.GetProperty("argumentsSha256").GetString()!).ToArray();
        Assert.Equal(2, hashes.Length);
        Assert.Equal(hashes[0], hashes[1]);
    }

    [Fact]
    public async Task UnwritableAuditLog_RefusesCalls()
    {
        // A directory cannot be opened as the audit file.
        AuditLog audit = AuditLog.Open(_directory, new AuditLogOptions());
        Assert.False(audit.IsHealthy);
        var policy = new FakeEvaluator();
        await using (var gateway = new GatewayHarness(policy, audit: audit))
        {
            await gateway.ClientSendAsync("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}""");
            using JsonDocument reply = JsonDocument.Parse((await gateway.ClientReceiveAsync())!);
            Assert.Equal("gateway:audit-unavailable", reply.RootElement.GetProperty("result").GetProperty("_meta").GetProperty("policycompiler/decision").GetProperty("rule").GetString());
        }

        Assert.Empty(policy.Calls);
        await audit.DisposeAsync();
    }

    [Fact]
    public async Task UnwritableAuditLog_WithFailOpen_ForwardsCalls()
    {
        AuditLog audit = AuditLog.Open(_directory, new AuditLogOptions());
        const string call = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}""";
        await using (var gateway = new GatewayHarness(new FakeEvaluator(), new GatewayOptions { AuditFailOpen = true }, audit))
        {
            await gateway.ClientSendAsync(call);
            Assert.Equal(call, await gateway.UpstreamReceiveAsync());
        }

        await audit.DisposeAsync();
    }

    [Fact]
    public async Task CanonicalJson_SortsKeysAndDropsWhitespace()
    {
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        CanonicalJson.Write(Encoding.UTF8.GetBytes("""{ "b" : [ 1.50 , {"d":null,"c":false} ], "a" : "\u0041\n" }"""), output);
        Assert.Equal("{\"a\":\"A\\n\",\"b\":[1.50,{\"c\":false,\"d\":null}]}", Encoding.UTF8.GetString(output.WrittenSpan));
        await Task.CompletedTask;
    }
}
