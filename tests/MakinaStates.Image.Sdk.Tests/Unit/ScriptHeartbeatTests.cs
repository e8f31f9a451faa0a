using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class ScriptHeartbeatTests
{
    [TestMethod]
    public void Describes_stage_script_elapsed_time_and_last_output()
    {
        Assert.AreEqual("Stage3: stage3.sh still running (20 s); last output: deploying",
            ScriptHeartbeat.Describe("Stage3", "stage3.sh", TimeSpan.FromSeconds(20.2), "  deploying "));
        Assert.AreEqual("Stage2: stage2.sh still running (10 s); no output yet",
            ScriptHeartbeat.Describe("Stage2", "stage2.sh", TimeSpan.FromSeconds(10), null));
        StringAssert.EndsWith(ScriptHeartbeat.Describe("Stage1", "stage1.sh", TimeSpan.Zero, new string('x', 500)), new string('x', 200) + "…");
    }

    [TestMethod]
    public async Task Beats_with_the_last_non_blank_line_and_never_after_dispose()
    {
        var beats = new List<string>();
        var lines = new List<string>();
        var heartbeat = new ScriptHeartbeat("Stage3", "stage3.sh", m => { lock (beats) beats.Add(m); }, TimeSpan.FromMilliseconds(50));
        var onLine = heartbeat.Observe(lines.Add);
        onLine("first");
        onLine("");
        await Task.Delay(300);
        heartbeat.Dispose();
        int count;
        lock (beats) count = beats.Count;
        await Task.Delay(200);
        CollectionAssert.AreEqual(new[] { "first", "" }, lines, "every line is passed on");
        lock (beats)
        {
            Assert.IsTrue(count >= 2, $"{count} beats");
            Assert.AreEqual(count, beats.Count, "a beat after Dispose");
            StringAssert.EndsWith(beats[^1], "; last output: first");
        }
    }
}
