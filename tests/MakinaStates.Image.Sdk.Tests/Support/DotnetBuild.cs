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
    public string? BuildId => FindBuildId(Output);

    internal static string? FindBuildId(string output) => BuildIdLine().Match(output) is { Success: true } m ? m.Groups[1].Value : null;

    /// <param name="launcher">A command that runs `dotnet build …` (its arguments follow), e.g. in another mount namespace.</param>
    /// <param name="verbosity">The -v: given to MSBuild; null leaves the user's default (minimal), as a plain `dotnet build` has.</param>
    public static async Task<DotnetBuild> RunAsync(string project, IEnumerable<string>? arguments = null,
        IDictionary<string, string?>? environment = null, TimeSpan? timeout = null, IReadOnlyList<string>? launcher = null, string? verbosity = "n")
    {
        await using var running = Running.Start(project, arguments, environment, launcher, verbosity);
        return await running.CompleteAsync(timeout ?? TimeSpan.FromMinutes(15));
    }

    /// <summary>A build in progress: its process, and its output as it comes.</summary>
    public sealed class Running : IAsyncDisposable
    {
        private readonly System.Text.StringBuilder _output = new();
        private readonly Stopwatch _watch = Stopwatch.StartNew();
        private readonly PeakMemory _memory;

        private readonly string _temporary;

        private Running(Process process, string temporary)
        {
            _temporary = temporary;
            Process = process;
            process.OutputDataReceived += (_, e) => Append(e.Data);
            process.ErrorDataReceived += (_, e) => Append(e.Data);
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _memory = PeakMemory.Watch(process.Id);
        }

        public Process Process { get; }

        public string Output
        {
            get { lock (_output) return _output.ToString(); }
        }

        public static Running Start(string project, IEnumerable<string>? arguments = null, IDictionary<string, string?>? environment = null,
            IReadOnlyList<string>? launcher = null, string? verbosity = "n")
        {
            var start = new ProcessStartInfo(launcher?[0] ?? "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = Path.GetDirectoryName(project)!,
            };
            IEnumerable<string> launched = launcher is null ? [] : [.. launcher.Skip(1), "dotnet"];
            foreach (var argument in launched.Concat(["build", project, "-nr:false", "-tl:off", "-nologo"]).Concat(verbosity is null ? [] : [$"-v:{verbosity}"]).Concat(arguments ?? []))
            {
                start.ArgumentList.Add(argument);
            }
            // The test host's own MSBuild settings must not leak into the user's build.
            foreach (var name in new[] { "MSBuildExtensionsPath", "MSBUILD_EXE_PATH", "MSBuildSDKsPath", "DOTNET_HOST_PATH" })
            {
                start.Environment.Remove(name);
            }
            start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
            // The build's own TMPDIR, removed with it: `dotnet build` leaves two empty folders in TMPDIR each time. No
            // compiler server either: it would outlive the build, its pipe in the removed folder.
            var temporary = Directory.CreateTempSubdirectory("msimage-build-tmp-").FullName;
            // A launcher may run the build as another user (the rootless Podman tests).
            File.SetUnixFileMode(temporary, (UnixFileMode)0x3FF);
            start.Environment["TMPDIR"] = temporary;
            start.Environment["UseSharedCompilation"] = "false";
            foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            {
                if (value is null) start.Environment.Remove(name); else start.Environment[name] = value;
            }
            return new Running(new Process { StartInfo = start }, temporary);
        }

        /// <summary>Waits until the output holds <paramref name="text"/>; fails if the build ends first.</summary>
        public Task WaitForOutputAsync(string text, TimeSpan timeout) => WaitForOutputAsync(timeout, text);

        /// <summary>Waits until the output holds one of <paramref name="texts"/> and returns it; fails if the build ends first.</summary>
        public async Task<string> WaitForOutputAsync(TimeSpan timeout, params string[] texts)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                var output = Output;
                if (texts.FirstOrDefault(t => output.Contains(t, StringComparison.Ordinal)) is { } seen)
                {
                    return seen;
                }
                if (Process.HasExited || DateTime.UtcNow > deadline)
                {
                    Assert.Fail($"none of '{string.Join("', '", texts)}' appeared:\n{output}");
                }
                await Task.Delay(100);
            }
        }

        public async Task<DotnetBuild> CompleteAsync(TimeSpan timeout)
        {
            using var cancel = new CancellationTokenSource(timeout);
            await Process.WaitForExitAsync(cancel.Token);
            Process.WaitForExit();
            await _memory.DisposeAsync();
            return new DotnetBuild(Process.ExitCode, Output, _watch.Elapsed, _memory.PeakBytes);
        }

        private void Append(string? line)
        {
            if (line is not null)
            {
                lock (_output) _output.AppendLine(line);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }
            await _memory.DisposeAsync();
            Process.Dispose();
            HostProcess.RunIgnoringFailure("rm", "-rf", _temporary);
        }
    }
}
