using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Waits until systemd in a container has finished booting.</summary>
public static class SystemdBoot
{
    /// <summary>How much of PID 1's own output an error quotes: systemd says why it gave up in its last lines.</summary>
    private const int QuotedLines = 15;

    /// <summary>
    /// Asks `systemctl is-system-running --wait` until it says running or degraded. Right after start it fails at
    /// once ("Failed to connect to bus") until systemd's bus is up, so a failure is retried, not believed. PID 1
    /// exiting meanwhile is a boot error quoting its last output, whichever call noticed it first.
    /// </summary>
    public static async Task<string> WaitAsync(DockerEngine engine, string containerId, TimeSpan timeout, Action<string> log, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var lastAnswer = "";
        while (DateTime.UtcNow < deadline)
        {
            await ThrowIfExitedAsync(engine, containerId, cancellationToken).ConfigureAwait(false);

            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(deadline - DateTime.UtcNow is var left && left > TimeSpan.Zero ? left : TimeSpan.FromSeconds(1));
            try
            {
                var lines = new List<string>();
                await ContainerExec.RunAsync(engine.Client, containerId, ["systemctl", "is-system-running", "--wait"], null, lines.Add, attempt.Token).ConfigureAwait(false);
                lastAnswer = string.Join(" ", lines).Trim();
                if (lastAnswer is "running" or "degraded")
                {
                    log($"systemd is {lastAnswer}.");
                    return lastAnswer;
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
            {
                // 409 "container is not running": PID 1 is gone; the next turn of the loop says why.
            }
            // Short: the bus is usually up within a few tenths of a second of the start, and every build waits here.
            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
        }
        await ThrowIfExitedAsync(engine, containerId, cancellationToken).ConfigureAwait(false);
        throw new ImageBuildException(MsiCodes.SystemdDidNotBoot,
            MsiMessages.Format("SystemdDidNotBoot_2", timeout.TotalSeconds, lastAnswer));
    }

    private static async Task ThrowIfExitedAsync(DockerEngine engine, string containerId, CancellationToken cancellationToken)
    {
        var state = await engine.Client.Containers.InspectContainerAsync(containerId, cancellationToken).ConfigureAwait(false);
        if (state.State is { Running: false })
        {
            var output = await LastOutputAsync(engine, containerId, cancellationToken).ConfigureAwait(false);
            throw ImageBuildException.ScriptFailed(MsiCodes.SystemdDidNotBoot, "SystemdDidNotBoot", state.State.ExitCode, output);
        }
    }

    /// <summary>The container's last output lines (PID 1's console, see <see cref="SystemdContainerSpec"/>), or a note that there is none.</summary>
    internal static async Task<IReadOnlyList<string>> LastOutputAsync(DockerEngine engine, string containerId, CancellationToken cancellationToken)
    {
        var lines = new List<string>();
        try
        {
            // A tty container's log is one raw stream: read as lines, without the terminal's colours.
            await engine.Client.Containers.GetContainerLogsAsync(containerId,
                new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Tail = QuotedLines.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                new ImmediateProgress<string>(line => lines.Add(ConsoleText(line))), cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException)
        {
            // A log driver that cannot be read back (journald, syslog): the exit code has to do.
        }
        lines.RemoveAll(string.IsNullOrWhiteSpace);
        return lines.Count > 0 ? lines : ["(no output: the engine's log driver keeps none, or PID 1 printed nothing)"];
    }

    /// <summary>A console line as text: no colour sequences, no carriage returns or other control characters.</summary>
    internal static string ConsoleText(string line) =>
        new(System.Text.RegularExpressions.Regex.Replace(line, @"\x1B\[[0-9;?]*[A-Za-z]", "").Where(c => !char.IsControl(c)).ToArray());
}
