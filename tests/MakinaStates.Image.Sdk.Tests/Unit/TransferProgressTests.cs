using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// The periodic logger: no line after Dispose returned, not even one a timer thread was writing as Dispose was called
/// (MSBuild's logger throws, or loses the line, once the task returned).
/// </summary>
[TestClass]
public sealed class TransferProgressTests
{
    [TestMethod]
    public void Dispose_waits_for_a_line_being_written_and_no_line_comes_after()
    {
        var lines = new List<string>();
        using var writing = new ManualResetEventSlim();
        var progress = TransferProgress.Every(elapsed => $"copying… {elapsed.TotalMilliseconds >= 0}", line =>
        {
            writing.Set();
            Thread.Sleep(300);
            lock (lines) lines.Add(line);
        }, TimeSpan.FromMilliseconds(20));
        Assert.IsTrue(writing.Wait(TimeSpan.FromSeconds(10)), "no line within 10 s");

        progress.Dispose();
        int written;
        lock (lines) written = lines.Count;
        Thread.Sleep(400);

        Assert.IsTrue(written >= 1, "the line being written when Dispose was called ends before Dispose returns");
        lock (lines)
        {
            Assert.AreEqual(written, lines.Count, "a line after Dispose returned");
            Assert.AreEqual("copying… True", lines[0]);
        }
    }
}
