using System.Diagnostics;
using System.Globalization;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Where a stage's time goes, step by step, logged at normal importance (`Stage2 steps: create 0.04 s, inject …`):
/// the benchmark's per-step breakdown, and a first look when a build is slower than expected.
/// </summary>
public sealed class StepTimes
{
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private readonly List<(string Step, TimeSpan Took)> _steps = [];
    private TimeSpan _last;

    /// <summary>Ends the current step (the time since the previous mark) under <paramref name="step"/>.</summary>
    public void Mark(string step)
    {
        var now = _watch.Elapsed;
        lock (_steps)
        {
            _steps.Add((step, now - _last));
            _last = now;
        }
    }

    public override string ToString()
    {
        lock (_steps)
        {
            return string.Join(", ", _steps.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Step} {s.Took.TotalSeconds:0.00} s")));
        }
    }
}
