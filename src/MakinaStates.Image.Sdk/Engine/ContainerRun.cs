using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Starts a created container whose command is a script, streams its output, and waits for its exit.</summary>
public static class ContainerRun
{
    public static async Task<(long ExitCode, IReadOnlyList<string> LastLines)> RunToExitAsync(DockerEngine engine, string containerId,
        Action<string> onLine, CancellationToken cancellationToken)
    {
        await engine.Client.Containers.StartContainerAsync(containerId, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
        var last = new LastLines();
        // Followed logs end when the container exits; read in order, line by line.
        using (var logs = await engine.Client.Containers.GetContainerLogsAsync(containerId,
                   new ContainerLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true }, cancellationToken).ConfigureAwait(false))
        {
            await ContainerExec.ReadLinesAsync(logs, line => { onLine(line); last.Add(line); }, cancellationToken).ConfigureAwait(false);
        }
        var exit = await engine.Client.Containers.WaitContainerAsync(containerId, cancellationToken).ConfigureAwait(false);
        return (exit.StatusCode, last.ToList());
    }
}
