namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// A stage script's output is logged at normal importance, so at the default verbosity a script that runs for minutes
/// (a salt deploy, a test suite) would print nothing. While it runs, this says every 10 s, at high importance, which
/// script of which stage runs, for how long, and the last line it printed.
/// </summary>
public sealed class ScriptHeartbeat : IDisposable
{
    private const int MaxLineLength = 200;
    private readonly TransferProgress _beat;
    private string? _lastLine;

    /// <param name="report">Called from a timer thread, never after <see cref="Dispose"/> returned.</param>
    public ScriptHeartbeat(string stage, string script, Action<string> report, TimeSpan? interval = null) =>
        _beat = TransferProgress.Every(elapsed => Describe(stage, script, elapsed, Volatile.Read(ref _lastLine)), report, interval);

    /// <summary>Passes each output line on to <paramref name="onLine"/>, remembering the last non-blank one.</summary>
    public Action<string> Observe(Action<string> onLine) => line =>
    {
        if (!string.IsNullOrWhiteSpace(line))
        {
            Volatile.Write(ref _lastLine, line);
        }
        onLine(line);
    };

    public static string Describe(string stage, string script, TimeSpan elapsed, string? lastLine)
    {
        var last = lastLine is null ? "no output yet"
            : "last output: " + (lastLine.Length > MaxLineLength ? lastLine[..MaxLineLength] + "…" : lastLine).Trim();
        return $"{stage}: {script} still running ({elapsed.TotalSeconds:0} s); {last}";
    }

    public void Dispose() => _beat.Dispose();
}
