using System.Diagnostics;
using System.Text.RegularExpressions;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>Runs `dotnet build` as a user does, in its own process, and keeps what it printed.</summary>
public sealed partial record DotnetBuild(int ExitCode, string Output, TimeSpan Duration, long PeakMemoryBytes)
{
    [GeneratedRegex(@"MakinaStates image build ([0-9a-f]{32})")]
    private static partial Regex BuildIdLine();

    public bool Succeeded => ExitCode == 0;

    /// <summary>The build id Stage0 printed (labels every stage container of that build).</summary>
    public string? BuildId => BuildIdLine().Match(Output) is { Success: true } m ? m.Groups[1].Value : null;

    public static async Task<DotnetBuild> RunAsync(string project, IEnumerable<string>? arguments = null,
        IDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(project)!,
        };
        foreach (var argument in new[] { "build", project, "-nr:false", "-tl:off", "-v:n", "-nologo" }.Concat(arguments ?? []))
        {
            start.ArgumentList.Add(argument);
        }
        // The test host's own MSBuild settings must not leak into the user's build.
        foreach (var name in new[] { "MSBuildExtensionsPath", "MSBUILD_EXE_PATH", "MSBuildSDKsPath", "DOTNET_HOST_PATH" })
        {
            start.Environment.Remove(name);
        }
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(name); else start.Environment[name] = value;
        }

        var output = new System.Text.StringBuilder();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        var watch = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var memory = PeakMemory.Watch(process.Id);
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(15));
        await process.WaitForExitAsync(cancel.Token);
        process.WaitForExit();
        await memory.DisposeAsync();
        lock (output)
        {
            return new DotnetBuild(process.ExitCode, output.ToString(), watch.Elapsed, memory.PeakBytes);
        }
    }
}
