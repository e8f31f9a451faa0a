using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Sends a host tree into a container through the engine's archive API (works with remote engines too).</summary>
public static class ArchiveUpload
{
    /// <param name="changed">Receives the files edited since the tree was collected, as they were sent (see <see cref="InjectedTreeArchive"/>).</param>
    /// <returns>The tree's folders the container already had (their own entries were not sent: see <see cref="ExistingFolderMetadata"/>).</returns>
    public static async Task<IReadOnlySet<string>> UploadAsync(DockerEngine engine, string containerId, InjectedTree tree, CancellationToken cancellationToken,
        Action<string>? progress = null, IDictionary<string, SentContent>? changed = null)
    {
        var existing = await ExistingDirectoriesAsync(engine, containerId, tree, cancellationToken).ConfigureAwait(false);
        var (archive, producer) = InjectedTreeArchive.Stream(tree, cancellationToken, existing, changed);
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
            catch (Exception)
            {
                // When the archive failed on our side (e.g. an unreadable file), that error is the one to report.
                await producer.ConfigureAwait(false);
                throw;
            }
            await producer.ConfigureAwait(false);
        }
        return existing;
    }

    /// <summary>
    /// The tree's folders that already exist in the container (as folders or as links to folders). Their entries are
    /// not sent: the engine would replace a link such as merged-usr's /bin -> usr/bin by a folder, and the image's
    /// own folders (/etc, /usr …) would take the build host's owner and mode. Files still go inside them, through
    /// the link where there is one; the folder's own metadata is applied afterwards as MsExistingFolderMetadata says.
    /// </summary>
    private static async Task<IReadOnlySet<string>> ExistingDirectoriesAsync(DockerEngine engine, string containerId, InjectedTree tree, CancellationToken cancellationToken)
    {
        var existing = new HashSet<string>(StringComparer.Ordinal);
        var absent = new List<string>();
        using var inFlight = new SemaphoreSlim(8);
        // Level by level, each level's questions at once (a tree of many folders asks in a few round trips); below a
        // folder the image does not have, nothing exists yet: no need to ask.
        foreach (var level in tree.Nodes.Where(n => InjectedTree.IsDirectory(n.Stat)).Select(n => n.ImagePath).GroupBy(p => p.Count(c => c == '/')).OrderBy(g => g.Key))
        {
            var asked = level.Where(p => !absent.Any(a => p.StartsWith(a + "/", StringComparison.Ordinal))).ToList();
            var answers = await Task.WhenAll(asked.Select(async path =>
            {
                await inFlight.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    return await ContainerFiles.ExistsAsync(engine, containerId, "/" + path, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    inFlight.Release();
                }
            })).ConfigureAwait(false);
            foreach (var (path, exists) in asked.Zip(answers))
            {
                (exists ? (ICollection<string>)existing : absent).Add(path);
            }
        }
        return existing;
    }
}
