using System.Diagnostics;
using System.Globalization;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Benchmarks;

/// <summary>One finished command: exit code, wall time, peak resident memory of its process tree, what it printed.</summary>
internal sealed record Result(int ExitCode, double Seconds, double PeakMegabytes, string Output);

/// <summary>Runs commands as whole processes, alternates two of them, and takes medians.</summary>
internal static class Measure
{
    public static Result Run(string program, IEnumerable<string> arguments, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory ?? "" };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        var watch = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var memory = PeakMemory.Watch(process.Id);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        var seconds = watch.Elapsed.TotalSeconds;
        memory.DisposeAsync().AsTask().Wait();
        return new Result(process.ExitCode, seconds, memory.PeakBytes / 1048576.0, output.Result + error.Result);
    }

    public static Result Require(Result result, string what) =>
        result.ExitCode == 0 ? result : throw new InvalidOperationException($"{what} failed ({result.ExitCode}):\n{result.Output}");

    /// <summary>A then B, <paramref name="runs"/> times: a drift of the machine's speed hits both alike.</summary>
    public static (List<Result> A, List<Result> B) Alternate(int runs, Func<Result> a, Func<Result> b) =>
        Alternate(runs, [a, b]) is [var ra, var rb] ? (ra, rb) : throw new InvalidOperationException("two commands, two lists");

    /// <summary>Each command in turn (A B C A B C …), <paramref name="runs"/> times: the results of each, in the commands' order.</summary>
    public static List<Result>[] Alternate(int runs, params Func<Result>[] commands)
    {
        var results = commands.Select(_ => new List<Result>()).ToArray();
        for (var i = 0; i < runs; i++)
        {
            for (var c = 0; c < commands.Length; c++)
            {
                results[c].Add(Require(commands[c](), ((char)('A' + c)).ToString()));
            }
        }
        return results;
    }

    public static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    /// <summary>The median of the pairwise ratios A/B.</summary>
    public static double MedianRatio(IReadOnlyList<double> a, IReadOnlyList<double> b) => Median(a.Zip(b, (x, y) => x / y));

    public static string Seconds(double seconds) => seconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";

    /// <summary>"step 0.12 s, other 1.30 s" lines (the SDK's `StageN steps:` and the CLI script's) as name → seconds.</summary>
    public static IEnumerable<(string Step, double Seconds)> ParseSteps(string line) =>
        line.Split(", ", StringSplitOptions.RemoveEmptyEntries)
            .Select(part => part.Trim())
            .Where(part => part.EndsWith(" s", StringComparison.Ordinal))
            .Select(part => (part[..part[..^2].LastIndexOf(' ')], double.Parse(part[(part[..^2].LastIndexOf(' ') + 1)..^2], CultureInfo.InvariantCulture)));
}
