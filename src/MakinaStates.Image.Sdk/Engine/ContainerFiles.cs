using Docker.DotNet;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>What a container's file system holds, asked through the archive API (works before the container starts).</summary>
public static class ContainerFiles
{
    public static async Task<bool> ExistsAsync(DockerEngine engine, string containerId, string path, CancellationToken cancellationToken)
    {
        try
        {
            var stat = await engine.Client.Containers.GetArchiveFromContainerAsync(containerId,
                new ContainerPathStatParameters { Path = path }, statOnly: true, cancellationToken).ConfigureAwait(false);
            stat.Stream?.Dispose();
            return true;
        }
        catch (DockerApiException e) when (DockerEngine.IsGone(e))
        {
            // Docker.DotNet maps every 404 of this call to "container not found", a missing path included.
            return false;
        }
    }
}
