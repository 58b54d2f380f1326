using System.Buffers;
using System.Text;
using PolicyCompiler.Gateway.Framing;
using PolicyCompiler.Gateway.Tests.TestSupport;

namespace PolicyCompiler.Gateway.Tests.Framing;

public class MessageClassifierTests
{
    private const string Call =
        """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"CreateCodeConnection","arguments":{"repo":"a/b","n":[1,{"x":"y"}]},"_meta":{"progressToken":"p"}}}""";

    public static TheoryData<string> Calls => new()
    {
        Call,
        // params before method: read in a second pass.
        """{"params":{"arguments":{"k":"\u00e9\n"},"name":"Cre\u0061te"},"method":"tools/call","id":"abc","jsonrpc":"2.0"}""",
        // escaped method and key names, non-ASCII tool name.
        """{"jsonrpc":"2.0","\u0069d":1,"m\u0065thod":"tools\/call","params":{"n\u0061me":"\u0064\u00e9ploy","arguments":{}}}""",
        // no arguments at all, whitespace everywhere.
        " { \"id\" : 3 , \"method\" : \"tools/call\" , \"params\" : { \"name\" : \"x\" } } \r",
    };

    [Theory]
    [MemberData(nameof(Calls))]
    public void EverySplitPoint_GivesTheSameReadingAsContiguous(string message)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(message);
        var expected = Read(new ReadOnlySequence<byte>(bytes));
        Assert.Equal(ClassifyStatus.Ok, expected.Status);
        for (int cut = 1; cut < bytes.Length; cut++)
        {
            Assert.Equal(expected, Read(Segments.Split(bytes, cut)));
        }

        // Three segments, including one-byte segments, at a stride that keeps the run short.
        for (int a = 1; a < bytes.Length - 1; a += 3)
        {
            for (int b = a + 1; b < bytes.Length; b += 5)
            {
                Assert.Equal(expected, Read(Segments.Split(bytes, a, b)));
            }
        }
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":42,"reason":"x"}}""", "42")]
    [InlineData("""{"params":{"reason":"x","requ\u0065stId":"a"},"jsonrpc":"2.0","method":"notifications\/cancelled"}""", "\"a\"")]
    public void Cancellation_ReadsTheCancelledRequestId(string message, string expectedId)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(message);
        for (int cut = 1; cut < bytes.Length; cut++)
        {
            var classifier = new MessageClassifier();
            Assert.Equal(ClassifyStatus.Ok, classifier.Classify(Segments.Split(bytes, cut), strict: true));
            Assert.Equal(MessageKind.Notification, classifier.Kind);
            Assert.Equal(KnownMethod.Cancelled, classifier.Method);
            Assert.Equal(expectedId, classifier.CancelledId.ToString());
        }
    }

    [Fact]
    public void Cancellation_WithoutAUsableRequestId_HasNone()
    {
        var classifier = new MessageClassifier();
        Assert.Equal(ClassifyStatus.Ok, classifier.Classify(new ReadOnlySequence<byte>("""{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":null}}"""u8.ToArray()), strict: true));
        Assert.False(classifier.CancelledId.HasValue);
        Assert.Equal(ClassifyStatus.DuplicateKey, classifier.Classify(new ReadOnlySequence<byte>("""{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"requestId":2}}"""u8.ToArray()), strict: true));
    }

    [Fact]
    public void ToolsCall_ReadsNameArgumentsAndId()
    {
        var reading = Read(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(Call)));
        Assert.Equal((ClassifyStatus.Ok, MessageKind.Request, KnownMethod.ToolsCall, "7", "CreateCodeConnection", """{"repo":"a/b","n":[1,{"x":"y"}]}"""), reading);
    }

    [Fact]
    public void EscapedNames_AreDecodedBeforeMatching()
    {
        const string escaped = """{"jsonrpc":"2.0","\u0069d":1,"m\u0065thod":"tools\/call","params":{"n\u0061me":"\u0064\u00e9ploy","arguments":{}}}""";
        var reading = Read(Segments.Split(escaped, 30));
        Assert.Equal(KnownMethod.ToolsCall, reading.Method);
        Assert.Equal("déploy", reading.Name);
        Assert.Equal("1", reading.Id);
    }

    [Theory]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"name\":\"b\"}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"\\u006eame\":\"b\"}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"method\":\"ping\",\"params\":{\"name\":\"a\"}}")]
    [InlineData("{\"id\":1,\"m\\u0065thod\":\"ping\",\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"p\":1,\"p\":2}}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"q\":{\"deep\":{\"p\":1,\"\\u0070\":2}}}}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"q\":[{\"p\":1,\"p\":1}]}}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{},\"arguments\":{\"x\":1}}}")]
    [InlineData("{\"id\":1,\"id\":2,\"method\":\"ping\"}")]
    [InlineData("{\"id\":1,\"method\":\"resources/read\",\"params\":{\"uri\":\"a\",\"uri\":\"b\"}}")]
    public void DuplicateKeys_AreRejectedWithTheRequestId(string message)
    {
        var reading = Read(Segments.Split(message, message.Length / 2));
        Assert.Equal(ClassifyStatus.DuplicateKey, reading.Status);
        Assert.True(reading.Id is "1" or "2");
    }

    [Theory]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":{\"x\":{\"p\":1},\"y\":{\"p\":1}}}}")]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"p\",\"arguments\":{\"name\":\"p\",\"p\":{\"p\":{\"p\":1}}}}}")]
    public void SameKeyInDifferentObjects_IsNotADuplicate(string message) =>
        Assert.Equal(ClassifyStatus.Ok, Read(Segments.Split(message, 17)).Status);

    [Fact]
    public void DuplicatesDeepInsideOtherMethodsParams_PassThrough()
    {
        // Only tools/call arguments are read by the policy; other methods' nested values are the server's business.
        const string message = "{\"id\":1,\"method\":\"resources/read\",\"params\":{\"uri\":\"a\",\"_meta\":{\"k\":1,\"k\":2}}}";
        Assert.Equal(ClassifyStatus.Ok, Read(Segments.Split(message, 9)).Status);
    }

    [Theory]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":[\"a\"]}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":5}}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\"}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":[1]}}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"Name\":\"b\"}}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":\"ping\",\"params\":\"x\"}", nameof(ClassifyStatus.InvalidParams))]
    [InlineData("{\"id\":1,\"method\":7}", nameof(ClassifyStatus.InvalidRequest))]
    [InlineData("{\"id\":null,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}", nameof(ClassifyStatus.InvalidRequest))]
    [InlineData("{\"id\":{},\"method\":\"ping\"}", nameof(ClassifyStatus.InvalidRequest))]
    [InlineData("{\"jsonrpc\":\"2.0\"}", nameof(ClassifyStatus.InvalidRequest))]
    [InlineData("\"tools/call\"", nameof(ClassifyStatus.InvalidRequest))]
    [InlineData("[{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"rm\"}}]", nameof(ClassifyStatus.Batch))]
    [InlineData("[]", nameof(ClassifyStatus.Batch))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\"", nameof(ClassifyStatus.ParseError))]
    [InlineData("{\"id\":1,\"method\":\"ping\"} {\"id\":2,\"method\":\"tools/call\"}", nameof(ClassifyStatus.ParseError))]
    [InlineData("{\"id\":1,\"method\":\"ping\",}", nameof(ClassifyStatus.ParseError))]
    [InlineData("{\"id\":1,\"method\":\"ping\"} // comment", nameof(ClassifyStatus.ParseError))]
    [InlineData("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"\\uD800\"}}", nameof(ClassifyStatus.ParseError))]
    [InlineData("not json", nameof(ClassifyStatus.ParseError))]
    [InlineData("   ", nameof(ClassifyStatus.Empty))]
    public void InvalidMessages_AreClassified(string message, string expectedName)
    {
        var expected = Enum.Parse<ClassifyStatus>(expectedName);
        Assert.Equal(expected, Read(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(message))).Status);
        Assert.Equal(expected, Read(Segments.Split(message, message.Length / 3, message.Length / 2)).Status);
    }

    [Fact]
    public void InvalidUtf8ToolName_IsRejected()
    {
        byte[] bytes = [.. "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a"u8, 0xFF, .. "\"}}"u8];
        var classifier = new MessageClassifier();
        ClassifyStatus status = classifier.Classify(new ReadOnlySequence<byte>(bytes), strict: true);
        Assert.NotEqual(ClassifyStatus.Ok, status);
    }

    [Fact]
    public void ToolsCallWithoutAnId_IsAnInvalidNotification()
    {
        var classifier = new MessageClassifier();
        ClassifyStatus status = classifier.Classify(new ReadOnlySequence<byte>("""{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"""u8.ToArray()), strict: true);
        Assert.Equal(ClassifyStatus.InvalidRequest, status);
        Assert.Equal(MessageKind.Notification, classifier.Kind);
        Assert.Contains("needs an id", classifier.Detail);
    }

    [Fact]
    public void Kinds_AreRecognised()
    {
        Assert.Equal(MessageKind.Notification, Read("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":2}}").Kind);
        Assert.Equal(MessageKind.Response, Read("{\"jsonrpc\":\"2.0\",\"id\":\"r\",\"result\":{}}").Kind);
        Assert.Equal(MessageKind.Response, Read("{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":1,\"message\":\"x\"}}").Kind);
        Assert.Equal(KnownMethod.ToolsList, Read("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"cursor\":\"c\"}}").Method);
    }

    [Fact]
    public void LongArgumentsAcrossManySegments_AreCopiedIntact()
    {
        string arguments = "{" + string.Join(",", Enumerable.Range(0, 2000).Select(i => $"\"k{i}\":\"v{i}\"")) + "}";
        string message = "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"t\",\"arguments\":" + arguments + "}}";
        int[] cuts = Enumerable.Range(1, message.Length / 97).Select(i => i * 97).ToArray();
        var reading = Read(Segments.Split(message, cuts));
        Assert.Equal(ClassifyStatus.Ok, reading.Status);
        Assert.Equal(arguments, reading.Arguments);
    }

    [Fact]
    public void PeekId_ReadsTheIdFromAPrefix()
    {
        var classifier = new MessageClassifier();
        Assert.Equal("42", classifier.PeekId(Segments.Split("{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"argum", 10)).ToString());
        Assert.False(classifier.PeekId(Segments.Split("{\"params\":{\"name\":\"x\",\"arguments\":{\"big\":\"aaaa", 5)).HasValue);
    }

    [Fact]
    public void ReusedClassifier_DoesNotCarryStateBetweenMessages()
    {
        var classifier = new MessageClassifier();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(ClassifyStatus.Ok, classifier.Classify(Segments.Split(Call, 20), strict: true));
            Assert.Equal(ClassifyStatus.Ok, classifier.Classify(Segments.Split(Call, 40), strict: true));
            Assert.Equal(ClassifyStatus.Ok, classifier.Classify(Segments.Split("{\"id\":2,\"method\":\"ping\"}"), strict: true));
            Assert.Equal(0, classifier.ToolName.Length);
        }
    }

    private static Reading Read(string message) => Read(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(message)));

    private static Reading Read(ReadOnlySequence<byte> message)
    {
        var classifier = new MessageClassifier();
        ClassifyStatus status = classifier.Classify(message, strict: true);
        return new Reading(
            status,
            classifier.Kind,
            classifier.Method,
            classifier.Id.ToString(),
            Encoding.UTF8.GetString(classifier.ToolName),
            Encoding.UTF8.GetString(classifier.ArgumentsJson));
    }

    private readonly record struct Reading(ClassifyStatus Status, MessageKind Kind, KnownMethod Method, string Id, string Name, string Arguments)
    {
        public static implicit operator (ClassifyStatus, MessageKind, KnownMethod, string, string, string)(Reading r) =>
            (r.Status, r.Kind, r.Method, r.Id, r.Name, r.Arguments);
    }
}
