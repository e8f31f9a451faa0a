using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Imports the OS base as an image tagged makinastates/base-&lt;os&gt;-&lt;release&gt;:&lt;hash&gt;, the hash being
/// the tarball's content: a build finds the import of its tarball by that tag and never imports it twice.
/// </summary>
public static class BaseImageImport
{
    public static string Repository(string os, string release) => $"makinastates/base-{os}-{release}";

    /// <summary>An existing tarball: its import is reused, or made.</summary>
    /// <param name="knownHash">The hash Stage0 had for it (its inputs key has it too), or empty: tried first, without reading the tarball.</param>
    public static async Task<string> ImportTarballAsync(DockerEngine engine, string tarballPath, string knownHash, string os, string release,
        ImagePlatform platform, Action<string> log, CancellationToken cancellationToken)
    {
        if (knownHash.Length > 0 && await TryReuseAsync(engine, $"{Repository(os, release)}:{knownHash}", platform, log, cancellationToken).ConfigureAwait(false) is { } known)
        {
            return known;
        }
        // Not imported yet, or replaced since Stage0: the tarball as it is now.
        var hash = await BaseTarball.HashAsync(tarballPath, cancellationToken).ConfigureAwait(false);
        var reference = $"{Repository(os, release)}:{hash}";
        if (await TryReuseAsync(engine, reference, platform, log, cancellationToken).ConfigureAwait(false) is { } existing)
        {
            return existing;
        }
        if (BaseTarballFinisher.ReadOrigin(tarballPath) is { } origin && BaseTarball.Tag(origin.Sha256) == hash
            && await engine.TryInspectImageAsync($"{Repository(os, release)}:{origin.ImportTag}", cancellationToken).ConfigureAwait(false) is { } ofRaw)
        {
            // Written by the finisher after the build that imported its raw tar had ended: that import is this tarball's.
            log($"Base image {reference} already imported.");
            log($"the import of its raw tar ({Repository(os, release)}:{origin.ImportTag}) is tagged {reference} now.");
            await TagAsync(engine, ofRaw.ID, tarballPath, hash, os, release, origin.ImportTag, cancellationToken).ConfigureAwait(false);
            await ImageArchitecture.EnsureAsync(engine, reference, platform, log, cancellationToken).ConfigureAwait(false);
            return reference;
        }

        log($"Importing {tarballPath} as {reference}.");
        var error = await UploadAsync(engine, tarballPath, Repository(os, release), hash, log, cancellationToken).ConfigureAwait(false);
        if (error is not null)
        {
            // Only a tarball that does not read through is called corrupt (and to be deleted); else the engine is at fault.
            throw await BaseTarball.IsReadableAsync(tarballPath, cancellationToken).ConfigureAwait(false) == true
                ? new ImageBuildException(MsiCodes.BaseImportRefused, MsiMessages.Format("BaseImportRefused", tarballPath, engine.Endpoint.Display, error), tarballPath)
                : new ImageBuildException(MsiCodes.BaseImportFailed, MsiMessages.Format("BaseImportFailed", tarballPath, error), tarballPath);
        }
        await ImageArchitecture.EnsureAsync(engine, reference, platform, log, cancellationToken).ConfigureAwait(false);
        await ReplacePreviousImportAsync(engine, tarballPath, reference, cancellationToken).ConfigureAwait(false);
        return reference;
    }

    private static async Task<string?> TryReuseAsync(DockerEngine engine, string reference, ImagePlatform platform, Action<string> log, CancellationToken cancellationToken)
    {
        if (await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false) is not { } image)
        {
            return null;
        }
        log($"Base image {reference} already imported.");
        if (!ImageArchitecture.Matches(image, platform))
        {
            // An import whose platform was never set (an interrupted build): set it now.
            await ImageArchitecture.EnsureAsync(engine, reference, platform, log, cancellationToken).ConfigureAwait(false);
        }
        return reference;
    }

    /// <summary>
    /// A fresh base as the uncompressed tar stage0.sh left: imported at once under a build-private tag, while its
    /// tarball is still being written. Returns the image id; <see cref="TagAsync"/> gives it its real tag later.
    /// </summary>
    public static async Task<string> ImportRawAsync(DockerEngine engine, string rawPath, string os, string release, string temporaryTag,
        ImagePlatform platform, Action<string> log, CancellationToken cancellationToken)
    {
        log($"Importing the fresh base {rawPath} (its tarball is written meanwhile).");
        var error = await UploadAsync(engine, rawPath, Repository(os, release), temporaryTag, log, cancellationToken).ConfigureAwait(false);
        var imported = await engine.TryInspectImageAsync($"{Repository(os, release)}:{temporaryTag}", cancellationToken).ConfigureAwait(false);
        if (error is not null || imported is null)
        {
            throw new ImageBuildException(MsiCodes.BaseImportRefused,
                MsiMessages.Format("BaseImportRefused", rawPath, engine.Endpoint.Display, error ?? "no image was created"), rawPath);
        }
        try
        {
            return await ImageArchitecture.EnsureAsync(engine, $"{Repository(os, release)}:{temporaryTag}", platform, log, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The caller only knows an import it was given the id of: this one goes here.
            await engine.UntagAsync($"{Repository(os, release)}:{temporaryTag}").ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The tarball is written: the import gets the tag later builds look for, and the build-private tag goes.</summary>
    public static async Task<string> TagAsync(DockerEngine engine, string imageId, string tarballPath, string hash, string os, string release,
        string temporaryTag, CancellationToken cancellationToken)
    {
        await engine.Client.Images.TagImageAsync(imageId, new ImageTagParameters { RepositoryName = Repository(os, release), Tag = hash }, cancellationToken).ConfigureAwait(false);
        await engine.UntagAsync($"{Repository(os, release)}:{temporaryTag}").ConfigureAwait(false);
        var reference = $"{Repository(os, release)}:{hash}";
        await ReplacePreviousImportAsync(engine, tarballPath, reference, cancellationToken).ConfigureAwait(false);
        return reference;
    }

    /// <summary>Uploads a tarball as the body of an import (a remote engine needs no access to the host's files).</summary>
    /// <returns>The engine's error, or null.</returns>
    private static async Task<string?> UploadAsync(DockerEngine engine, string path, string repository, string tag, Action<string> log, CancellationToken cancellationToken)
    {
        string? error = null;
        var size = new FileInfo(path).Length;
        await using var upload = new TransferProgress.CountingStream(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan));
        using (TransferProgress.Every(elapsed => $"importing the base: {TransferProgress.Megabytes(upload.Count)} of {TransferProgress.Megabytes(size)} sent in {elapsed.TotalSeconds:0} s", log))
        {
            try
            {
                await engine.Client.Images.CreateImageAsync(
                    // The tag inside Repo: Podman ignores the separate tag parameter of an import (and tags it latest).
                    new ImagesCreateParameters { FromSrc = "-", Repo = $"{repository}:{tag}", Changes = ["CMD [\"/sbin/init\"]"] },
                    upload, null, new ImmediateProgress<JSONMessage>(m => error ??= m.Error?.Message), cancellationToken).ConfigureAwait(false);
            }
            catch (Docker.DotNet.DockerApiException e)
            {
                error = e.ResponseBody?.Trim() is { Length: > 0 } body ? body : e.Message;
            }
        }
        if (error is null && await engine.TryInspectImageAsync($"{repository}:{tag}", cancellationToken).ConfigureAwait(false) is null)
        {
            error = "no image was created";
        }
        return error;
    }

    /// <summary>
    /// The import this tarball replaced is removed (unless images still build on it). Which one that was is recorded
    /// beside the tarball: imports of other data dirs' tarballs (other users, tests) are theirs and stay.
    /// </summary>
    private static async Task ReplacePreviousImportAsync(DockerEngine engine, string tarballPath, string reference, CancellationToken cancellationToken)
    {
        var record = tarballPath + ".imported";
        var previous = File.Exists(record) ? (await File.ReadAllTextAsync(record, cancellationToken).ConfigureAwait(false)).Trim() : "";
        if (previous.Length > 0 && previous != reference)
        {
            // Already gone, still the parent of a stage1 image, or used by a container: it stays.
            await engine.RemoveImageIfPresentAsync(previous, cancellationToken).ConfigureAwait(false);
        }
        try
        {
            Concurrency.AtomicFile.WriteAllText(record, reference + "\n");
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // A base shared read-only (a rootless user's, made once by root): the record is a tidiness, not a need.
        }
    }
}
