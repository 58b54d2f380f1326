using System.Text;
using PolicyCompiler.Policy.Runtime;

namespace PolicyCompiler.Policy.Tests.Runtime;

public class LimitArgumentsTests
{
    private static readonly ArgumentPath V = ArgumentLookupTests.Path("v");

    private static string Key(byte[] json) => LimitArguments.KeyText(ArgumentLookup.Find(json, V));

    [Theory]
    [InlineData("""{"v":"prod-eu-1"}""", "prod-eu-1")]
    [InlineData("""{"v":"caf\u00e9"}""", "café")]
    [InlineData("""{"v":12.50}""", "12.50")]
    [InlineData("""{"v":true}""", "true")]
    [InlineData("""{"v":[1, 2]}""", "[1, 2]")]
    [InlineData("""{}""", "")]
    [InlineData("""{"v":1,"v":1}""", "")]
    public void KeyText_IsTheValuesText(string json, string expected)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(json);
        Assert.Equal(expected, Key(bytes));
        Assert.Equal(expected, Key(bytes)); // again, now from the cache
    }

    [Fact]
    public void KeyText_SameBytes_SameStringWithoutAllocating()
    {
        byte[] json = """{"v":"cluster-a"}"""u8.ToArray();
        string first = Key(json);
        string second = Key("""{"other":0,"v":"cluster-a"}"""u8.ToArray());
        Assert.Same(first, second);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            Assert.Same(first, Key(json));
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }

    [Fact]
    public void KeyText_DifferentBytes_NeverShareText()
    {
        // Many keys through 64 slots: collisions replace entries but never return another key's text.
        for (int round = 0; round < 2; round++)
        {
            for (int i = 0; i < 500; i++)
            {
                string key = "k" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                Assert.Equal(key, Key(Encoding.UTF8.GetBytes("{\"v\":\"" + key + "\"}")));
            }
        }
    }

    [Fact]
    public void KeyText_InvalidUtf8_AsEncodingReadsIt()
    {
        byte[] json = [.. "{\"v\":\"a"u8, 0xFF, .. "\"}"u8];
        Assert.Equal(Encoding.UTF8.GetString([(byte)'a', 0xFF]), Key(json));
        // A different invalid byte decodes to the same text, but is its own cache entry.
        byte[] other = [.. "{\"v\":\"a"u8, 0xFE, .. "\"}"u8];
        Assert.Equal(Encoding.UTF8.GetString([(byte)'a', 0xFE]), Key(other));
    }

    [Fact]
    public void KeyText_LongKey_NotCachedButCorrect()
    {
        string key = new('x', 200);
        byte[] json = Encoding.UTF8.GetBytes("{\"v\":\"" + key + "\"}");
        Assert.Equal(key, Key(json));
        Assert.NotSame(Key(json), Key(json));
    }
}
