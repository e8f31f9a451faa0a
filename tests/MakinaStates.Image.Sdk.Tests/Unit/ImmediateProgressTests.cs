using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// The engine's streamed replies are reported inline: by the time the call returns, every report (the engine's error
/// text among them) has been handled, on the caller's thread, and none comes later.
/// </summary>
[TestClass]
public sealed class ImmediateProgressTests
{
    [TestMethod]
    public void Each_report_is_handled_before_Report_returns_on_the_reporting_thread()
    {
        var handled = new List<(string Value, int Thread)>();
        IProgress<string> progress = new ImmediateProgress<string>(value => handled.Add((value, Environment.CurrentManagedThreadId)));

        progress.Report("Downloading");
        progress.Report("error: manifest unknown");

        CollectionAssert.AreEqual(new[] { ("Downloading", Environment.CurrentManagedThreadId), ("error: manifest unknown", Environment.CurrentManagedThreadId) },
            handled.ToArray());
    }
}
