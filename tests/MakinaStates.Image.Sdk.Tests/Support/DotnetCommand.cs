using System.Diagnostics;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// A dotnet command other than a build (new, sln, restore) run as a user runs it, in its own process: its exit code and
/// everything it printed, for the test to check (a restore's warnings are on standard output).
/// </summary>
public sealed record DotnetCommand(int ExitCode, string Output)
{
    public bool Succeeded => ExitCode == 0;

    public static async Task<DotnetCommand> RunAsync(string directory, IEnumerable<string> arguments, IDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        // As DotnetBuild: the test host's MSBuild settings stay out, no node or compiler server outlives the command, and
        // its TMPDIR (where MSBuild leaves empty folders) is its own, removed with it.
        foreach (var name in new[] { "MSBuildExtensionsPath", "MSBUILD_EXE_PATH", "MSBuildSDKsPath", "DOTNET_HOST_PATH" })
        {
            start.Environment.Remove(name);
        }
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["UseSharedCompilation"] = "false";
        start.Environment["DOTNET_NOLOGO"] = "1";
        var temporary = Directory.CreateTempSubdirectory("msimage-command-tmp-").FullName;
        start.Environment["TMPDIR"] = temporary;
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(name); else start.Environment[name] = value;
        }
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            await process.WaitForExitAsync(timeout.Token);
            return new DotnetCommand(process.ExitCode, await output + await error);
        }
        finally
        {
            HostProcess.RunIgnoringFailure("rm", "-rf", temporary);
        }
    }
}
