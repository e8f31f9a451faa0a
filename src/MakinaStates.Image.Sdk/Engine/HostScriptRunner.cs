using System.Diagnostics;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Runs a stage script on the build host (stage0.sh's debootstrap), streaming its output.</summary>
public static class HostScriptRunner
{
    public static async Task<(int ExitCode, IReadOnlyList<string> LastLines)> RunAsync(string script, IDictionary<string, string> environment,
        Action<string> onLine, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("/bin/bash", [script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var last = new LastLines();
        void Emit(string? line)
        {
            if (line is not null)
            {
                // stdout and stderr arrive on two threads: one line at a time into the log.
                lock (last)
                {
                    onLine(line);
                    last.Add(line);
                }
            }
        }

        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Emit(e.Data);
        process.ErrorDataReceived += (_, e) => Emit(e.Data);
        if (!process.Start())
        {
            throw new ImageBuildException(MsiCodes.BaseCreationFailed, MsiMessages.Format("BaseCreationFailed", script), script);
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // SIGTERM first so the script's trap removes its temporary files; then make sure it is gone.
            Mono.Unix.Native.Syscall.kill(process.Id, Mono.Unix.Native.Signum.SIGTERM);
            if (!process.WaitForExit(10_000))
            {
                process.Kill(entireProcessTree: true);
            }
            throw;
        }
        return (process.ExitCode, last.ToList());
    }
}
