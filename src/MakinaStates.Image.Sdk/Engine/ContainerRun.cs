using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Starts a created container whose command is a script, streams its output, and waits for its exit.</summary>
public static class ContainerRun
{
    public static async Task<(long ExitCode, IReadOnlyList<string> LastLines)> RunToExitAsync(DockerEngine engine, string containerId,
        Action<string> onLine, CancellationToken cancellationToken)
    {
        await engine.Client.Containers.StartContainerAsync(containerId, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
        var last = new Queue<string>();
        await engine.Client.Containers.GetContainerLogsAsync(containerId,
            new ContainerLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true },
            new Progress<string>(line =>
            {
                lock (last)
                {
                    var text = line.TrimEnd('\n', '\r');
                    onLine(text);
                    last.Enqueue(text);
                    if (last.Count > 50) last.Dequeue();
                }
            }), cancellationToken).ConfigureAwait(false);
        var exit = await engine.Client.Containers.WaitContainerAsync(containerId, cancellationToken).ConfigureAwait(false);
        lock (last)
        {
            return (exit.StatusCode, last.ToArray());
        }
    }
}
