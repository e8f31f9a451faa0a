using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Waits until systemd in a container has finished booting.</summary>
public static class SystemdBoot
{
    /// <summary>
    /// Asks `systemctl is-system-running --wait` until it says running or degraded. Right after start it fails at
    /// once ("Failed to connect to bus") until systemd's bus is up, so a failure is retried, not believed.
    /// </summary>
    public static async Task<string> WaitAsync(DockerEngine engine, string containerId, TimeSpan timeout, Action<string> log, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var lastAnswer = "";
        while (DateTime.UtcNow < deadline)
        {
            var state = await engine.Client.Containers.InspectContainerAsync(containerId, cancellationToken).ConfigureAwait(false);
            if (state.State is { Running: false })
            {
                throw new ImageBuildException(MsiCodes.SystemdDidNotBoot,
                    MsiMessages.Format("SystemdDidNotBoot", state.State.ExitCode));
            }

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
            // Short: the bus is usually up within a few tenths of a second of the start, and every build waits here.
            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
        }
        throw new ImageBuildException(MsiCodes.SystemdDidNotBoot,
            MsiMessages.Format("SystemdDidNotBoot_2", timeout.TotalSeconds, lastAnswer));
    }
}
