using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Sends a host tree into a container through the engine's archive API (works with remote engines too).</summary>
public static class ArchiveUpload
{
    public static async Task UploadAsync(DockerEngine engine, string containerId, InjectedTree tree, CancellationToken cancellationToken,
        Action<string>? progress = null)
    {
        var (archive, producer) = InjectedTreeArchive.Stream(tree, cancellationToken);
        var reader = new TransferProgress.CountingStream(archive);
        using var report = progress is null ? null
            : TransferProgress.Every(elapsed => $"injecting {tree.Nodes.Count} entries: {TransferProgress.Megabytes(reader.Count)} sent in {elapsed.TotalSeconds:0} s", progress);
        await using (reader)
        {
            try
            {
                // CopyUIDGID stays off: the engine then keeps the numeric owners written in the archive.
                await engine.Client.Containers.ExtractArchiveToContainerAsync(containerId,
                    new CopyToContainerParameters { Path = "/" }, reader, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (producer.IsFaulted)
            {
                // The archive failed on our side (e.g. an unreadable file): that error is the one to report.
            }
            await producer.ConfigureAwait(false);
        }
    }
}
