using System.Text;
using PolicyCompiler.Gateway.Framing;

namespace PolicyCompiler.Gateway.Tests.Framing;

/// <summary>
/// The duplicate-key detector against a plain model (one set of names per open object), over random
/// documents small enough for direct comparison and large enough for the hash table, and across messages.
/// </summary>
public class DuplicateKeyDetectorTests
{
    [Fact]
    public void RandomObjectTrees_AgreeWithOneSetPerObject()
    {
        var random = new Random(20261126);
        var detector = new DuplicateKeyDetector();
        string[] names = ["a", "b", "id", "name", "arguments", "x", "yy", "zzz", "method", "params", "k1", "k2", "k3"];
        int duplicates = 0, added = 0;
        for (int message = 0; message < 3000; message++)
        {
            // Sizes around the switch from direct comparison to the hash table, and well past it.
            int operations = random.Next(1, message % 3 == 0 ? 200 : 3 * DuplicateKeyDetector.DirectCompareLimit);
            detector.Reset();
            detector.EnterObject();
            var open = new Stack<HashSet<string>>();
            open.Push([]);
            for (int i = 0; i < operations; i++)
            {
                int choice = random.Next(10);
                if (choice == 0 && open.Count < 6)
                {
                    detector.EnterObject();
                    open.Push([]);
                }
                else if (choice == 1 && open.Count > 1)
                {
                    detector.ExitObject();
                    open.Pop();
                }
                else
                {
                    string name = names[random.Next(names.Length)];
                    bool expected = open.Peek().Add(name);
                    Assert.Equal(expected, detector.TryAdd(Encoding.UTF8.GetBytes(name)));
                    if (expected)
                    {
                        added++;
                    }
                    else
                    {
                        duplicates++;
                    }
                }
            }
        }

        // Both outcomes were exercised many times.
        Assert.True(duplicates > 1000 && added > 1000, $"{duplicates} duplicates, {added} added");
    }

    [Fact]
    public void ADuplicateOfAnEarlyKey_IsFound_AfterTheMessageOutgrowsDirectComparison()
    {
        var detector = new DuplicateKeyDetector();
        detector.Reset();
        detector.EnterObject();
        Assert.True(detector.TryAdd("first"u8));
        for (int i = 0; i < 3 * DuplicateKeyDetector.DirectCompareLimit; i++)
        {
            Assert.True(detector.TryAdd(Encoding.UTF8.GetBytes("k" + i)));
        }

        Assert.False(detector.TryAdd("first"u8));
        Assert.False(detector.TryAdd("k3"u8));

        // A new message forgets them all, whichever way they were recorded.
        detector.Reset();
        detector.EnterObject();
        Assert.True(detector.TryAdd("first"u8));
        Assert.True(detector.TryAdd("k3"u8));
        Assert.False(detector.TryAdd("k3"u8));
    }
}
