using MakinaStates.Image.Sdk.Concurrency;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>
/// Writes images already on the engine into one archive file (<see cref="ArchiveFormat"/>), streamed from the engine's
/// save of each image: nothing is held whole in memory or on disk but the archive itself. The file is written under a
/// temporary name beside it and renamed when complete: whatever fails (the engine, a full disk, cancellation), the
/// temporary goes and an archive already at the path stays as it was.
/// </summary>
public static class ImageArchiveWriter
{
    public static Task<WrittenArchive> WriteAsync(DockerEngine engine, ArchiveRequest request, CancellationToken cancellationToken) =>
        WriteAsync(request, (image, ct) => ImageArchive.SaveAsync(engine, image.ImageId, ct), cancellationToken);

    /// <summary>The archive of the images <paramref name="save"/> streams (the engine's saves, or a test's).</summary>
    internal static async Task<WrittenArchive> WriteAsync(ArchiveRequest request, SavedImage.Save save, CancellationToken cancellationToken)
    {
        request.Validate();
        try
        {
            var digest = await AtomicFile.WriteAsync(request.Path, async temporary =>
            {
                // Read and write: a blob's header is written again once its content has passed.
                var output = new FileStream(temporary, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16);
                await using (output.ConfigureAwait(false))
                {
                    var tar = new ArchiveTarWriter(output, request.EntryTime);
                    var digest = request.Format switch
                    {
                        ArchiveFormat.Oci => await OciLayoutWriter.WriteAsync(tar, request, save, cancellationToken).ConfigureAwait(false),
                        ArchiveFormat.Docker => await DockerArchiveWriter.WriteAsync(tar, request, save, cancellationToken).ConfigureAwait(false),
                        _ => throw new ArgumentOutOfRangeException(nameof(request), request.Format, "unknown archive format"),
                    };
                    await tar.FinishAsync(cancellationToken).ConfigureAwait(false);
                    return digest;
                }
            }).ConfigureAwait(false);
            return new WrittenArchive(request.Path, request.Format, digest);
        }
        catch (Exception e) when (e is not OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            // The engine's stream, disposed on cancellation, fails the read in progress with whatever it throws then.
            throw new OperationCanceledException("The archive was not written: cancelled.", e, cancellationToken);
        }
    }
}
