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

        var last = new Queue<string>();
        void Emit(string? line)
        {
            if (line is null)
            {
                return;
            }
            lock (last)
            {
                onLine(line);
                last.Enqueue(line);
                if (last.Count > 50)
                {
                    last.Dequeue();
                }
            }
        }

        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Emit(e.Data);
        process.ErrorDataReceived += (_, e) => Emit(e.Data);
        if (!process.Start())
        {
            throw new ImageBuildException(MsiCodes.BaseCreationFailed, $"Could not start {script}.", script);
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
        lock (last)
        {
            return (process.ExitCode, last.ToArray());
        }
    }
}
