namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The progress sink for the engine's streamed replies (pull, import, load, build, push, logs). System.Progress posts
/// each report to the thread pool, so a report could run after the call returned: its line logged after the task
/// returned (MSBuild's logger throws, or the line is lost), or the engine's error text read by the caller before it
/// was recorded. This one runs <paramref name="report"/> inline, before the call goes on.
/// </summary>
public sealed class ImmediateProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
