using System.Buffers;
using System.Text;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Transport.StreamableHttp;

namespace PolicyCompiler.Http.Tests;

/// <summary>What the child-per-session bridge reads from a message to route it (<see cref="JsonRpcPeek"/>).</summary>
public sealed class JsonRpcPeekTests
{
    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":3,"result":{}}""", "Response")]
    [InlineData("""{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}""", "Response")]
    [InlineData("""{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}""", "RequestRelated")]
    [InlineData("""{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}""", "RequestRelated")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"elicitation/create","params":{}}""", "RequestRelated")]
    [InlineData("""{"jsonrpc":"2.0","id":2,"method":"roots/list"}""", "RequestRelated")]
    [InlineData("""{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}""", "Session")]
    [InlineData("""{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"x"}}""", "Session")]
    [InlineData("""{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}""", "Progress")]
    public void Scope_FollowsTheMethod(string json, string scope)
    {
        // The scope by name: the enum is internal, and theory parameters of public tests must be public.
        Assert.True(JsonRpcPeek.TryRead(Bytes(json), out JsonRpcPeek peek));
        Assert.Equal(scope, peek.Scope.ToString());
    }

    [Fact]
    public void ProgressNotification_TokenFromParams_WhateverTheKeyOrder()
    {
        Assert.True(JsonRpcPeek.TryRead(Bytes("""{"params":{"progress":5,"progressToken":"tok"},"method":"notifications/progress","jsonrpc":"2.0"}"""), out JsonRpcPeek peek));
        Assert.Equal(ChildMessageScope.Progress, peek.Scope);
        Assert.Equal(RequestId.FromString("tok"), peek.ProgressToken);
        Assert.False(peek.Id.HasValue);
    }

    [Fact]
    public void Request_TokenFromMeta_IdAndInitialize()
    {
        Assert.True(JsonRpcPeek.TryRead(Bytes("""{"jsonrpc":"2.0","params":{"name":"t","arguments":{"progressToken":"not this"},"_meta":{"x":[1,{"y":2}],"progressToken":42}},"id":"r1","method":"tools/call"}"""), out JsonRpcPeek peek));
        Assert.True(peek.IsRequest);
        Assert.False(peek.IsInitialize);
        Assert.Equal(RequestId.FromString("r1"), peek.Id);
        Assert.Equal(RequestId.FromInteger(42), peek.ProgressToken);

        Assert.True(JsonRpcPeek.TryRead(Bytes("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"""), out JsonRpcPeek initialize));
        Assert.True(initialize.IsInitialize);
        Assert.False(initialize.ProgressToken.HasValue);
    }

    [Fact]
    public void EscapedNames_AreReadDecoded()
    {
        // "\u0069nitialize" is "initialize", "\u0069d" is "id": a server sees them so, so must the router.
        Assert.True(JsonRpcPeek.TryRead(Bytes("""{"jsonrpc":"2.0","\u0069d":7,"method":"\u0069nitialize"}"""), out JsonRpcPeek peek));
        Assert.True(peek.IsInitialize);
        Assert.Equal(RequestId.FromInteger(7), peek.Id);
    }

    [Fact]
    public void SplitAcrossSegments_ReadsTheSame()
    {
        byte[] json = Encoding.UTF8.GetBytes("""{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"abc","progress":1}}""");
        for (int split = 1; split < json.Length; split++)
        {
            Assert.True(JsonRpcPeek.TryRead(Segmented(json, split), out JsonRpcPeek peek));
            Assert.Equal(ChildMessageScope.Progress, peek.Scope);
            Assert.Equal(RequestId.FromString("abc"), peek.ProgressToken);
        }
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("""{"id":1,"method":"x" """)]
    public void NotAnObject_IsRefused(string text) => Assert.False(JsonRpcPeek.TryRead(Bytes(text), out _));

    private static ReadOnlySequence<byte> Bytes(string text) => new(Encoding.UTF8.GetBytes(text));

    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int split)
    {
        var first = new Segment(bytes.AsMemory(0, split));
        Segment last = first.Append(bytes.AsMemory(split));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
