using System.Security.Cryptography;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Imports the OS base tarball as an image, once per tarball content (the tag carries its hash).</summary>
public static class BaseImageImport
{
    public static async Task<string> ImportAsync(DockerEngine engine, string tarballPath, string os, string release,
        Action<string> log, CancellationToken cancellationToken)
    {
        string hash;
        await using (var stream = File.OpenRead(tarballPath))
        {
            hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false))[..16];
        }
        var reference = $"makinastates/base-{os}-{release}:{hash}";
        if (await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false) is not null)
        {
            log($"Base image {reference} already imported.");
            return reference;
        }

        log($"Importing {tarballPath} as {reference}.");
        string? error = null;
        var size = new FileInfo(tarballPath).Length;
        await using (var upload = new TransferProgress.CountingStream(File.OpenRead(tarballPath)))
        using (TransferProgress.Every(elapsed => $"importing the base: {TransferProgress.Megabytes(upload.Count)} of {TransferProgress.Megabytes(size)} sent in {elapsed.TotalSeconds:0} s", log))
        {
            try
            {
                // Uploaded as the request body, so a remote engine needs no access to the host's files.
                await engine.Client.Images.CreateImageAsync(
                    // The tag inside Repo: Podman ignores the separate tag parameter of an import (and tags it latest).
                    new ImagesCreateParameters { FromSrc = "-", Repo = reference, Changes = ["CMD [\"/sbin/init\"]"] },
                    upload, null, new Progress<JSONMessage>(m => error ??= m.Error?.Message), cancellationToken).ConfigureAwait(false);
            }
            catch (Docker.DotNet.DockerApiException e)
            {
                error = e.ResponseBody?.Trim() is { Length: > 0 } body ? body : e.Message;
            }
        }
        if (error is not null || await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false) is null)
        {
            // Only a tarball that does not read to its end is blamed (and to be deleted); otherwise it is the engine.
            throw BaseTarballCheck.IsIntact(tarballPath) == false
                ? new ImageBuildException(MsiCodes.BaseImportFailed, MsiMessages.Format("BaseImportFailed", tarballPath, error ?? "no image was created"), tarballPath)
                : new ImageBuildException(MsiCodes.EngineRefused, MsiMessages.Format("BaseImportRefused", tarballPath, reference, error ?? "no image was created"), tarballPath);
        }
        await RemoveOlderImportsAsync(engine, $"makinastates/base-{os}-{release}", hash, cancellationToken).ConfigureAwait(false);
        return reference;
    }

    /// <summary>Imports of an earlier tarball are removed (unless images still build on them).</summary>
    private static async Task RemoveOlderImportsAsync(DockerEngine engine, string repository, string currentTag, CancellationToken cancellationToken)
    {
        var images = await engine.Client.Images.ListImagesAsync(new ImagesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["reference"] = new Dictionary<string, bool> { [repository] = true } },
        }, cancellationToken).ConfigureAwait(false);
        foreach (var tag in images.SelectMany(i => i.RepoTags ?? []).Where(t => Settings.ImageReference.AsWritten(t) != $"{repository}:{currentTag}"))
        {
            try
            {
                await engine.Client.Images.DeleteImageAsync(tag, new ImageDeleteParameters(), cancellationToken).ConfigureAwait(false);
            }
            catch (Docker.DotNet.DockerApiException)
            {
                // Still the parent of a stage1 image or used by a container: it stays.
            }
        }
    }
}
