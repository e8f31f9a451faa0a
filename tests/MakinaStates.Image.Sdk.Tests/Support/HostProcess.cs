using System.Diagnostics;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>Runs a program of the test host (git, setfacl, getfacl, chown, dotnet sln …) and fails the test if it fails.</summary>
public static class HostProcess
{
    public static string Run(string program, params string[] arguments) => RunIn(null, program, arguments);

    /// <summary>Best-effort cleanup (a link or mount that may already be gone): the exit code is not checked.</summary>
    public static void RunIgnoringFailure(string program, params string[] arguments)
    {
        using var process = Process.Start(StartInfo(program, arguments))!;
        process.StandardOutput.ReadToEnd();
        process.StandardError.ReadToEnd();
        process.WaitForExit();
    }

    /// <summary>A daemon for a test (dockerd, docker-registry): its output goes to a log file, it keeps running.</summary>
    public static Process StartDaemon(string commandLine, string logFile)
    {
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        // exec: the Process is the daemon itself, so killing it stops the daemon.
        start.ArgumentList.Add($"exec {commandLine} > {logFile} 2>&1 < /dev/null");
        return Process.Start(start)!;
    }

    /// <summary>Stops a daemon started by <see cref="StartDaemon"/>: SIGTERM, 30 s to exit, then a kill.</summary>
    public static async Task StopDaemonAsync(Process daemon)
    {
        if (!daemon.HasExited)
        {
            Mono.Unix.Native.Syscall.kill(daemon.Id, Mono.Unix.Native.Signum.SIGTERM);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await daemon.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                daemon.Kill(entireProcessTree: true);
                await daemon.WaitForExitAsync();
            }
        }
        daemon.Dispose();
    }

    private static ProcessStartInfo StartInfo(string program, string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        return start;
    }

    public static string RunIn(string? directory, string program, params string[] arguments)
    {
        var start = StartInfo(program, arguments);
        if (directory is not null)
        {
            start.WorkingDirectory = directory;
        }
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.AreEqual(0, process.ExitCode, $"{program} {string.Join(' ', arguments)}: {error}");
        return output.Result;
    }
}
