using System.Security.Cryptography;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>What an archive file holds the images as.</summary>
public enum ArchiveFormat
{
    /// <summary>An OCI image layout in a tar (what skopeo's and buildah's oci-archive: and umoci read).</summary>
    Oci,

    /// <summary>What `docker save` writes and `docker load` takes (one platform).</summary>
    Docker,
}

/// <summary>An image on the engine to archive: its id, and the platform its config says (checked when written).</summary>
public sealed record ArchivedImage(string ImageId, ImagePlatform Platform);

/// <summary>A file placed in the archive at <paramref name="Name"/> beside the images (a bill of materials).</summary>
public sealed record ArchiveExtraFile(string Name, byte[] Content)
{
    /// <summary>sha256:&lt;hex&gt; of the content: its blob's name in an OCI layout, and what the up-to-date check compares.</summary>
    public string Digest => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Content));
}

/// <summary>A file of an archive, named by where it is and what its content hashes to.</summary>
public sealed record ArchivedFile(string Name, string Digest);

/// <summary>The archive written: where, as what, and the digest a consumer knows it by.</summary>
/// <param name="Digest">OCI: the digest of what a consumer pulls (the image manifest of one platform, the image index of
/// several). Docker: the image id.</param>
public sealed record WrittenArchive(string Path, ArchiveFormat Format, string Digest);

/// <summary>
/// One archive file holding one image per platform under every name <c>Repository:Tag</c>, and extra files beside them.
/// </summary>
/// <param name="Path">The archive file (written beside it under a temporary name, then renamed).</param>
/// <param name="Repository">The images' repository (makinastates/hello-systemd).</param>
/// <param name="Tags">Every tag to name the image by, first as given (candidate, 1.2.3, latest); a repeated tag counts once.</param>
/// <param name="Images">One image per platform; the docker format takes one.</param>
/// <param name="ExtraFiles">Files written beside the images, at their names (and as blobs in an OCI layout).</param>
public sealed record ArchiveRequest(string Path, ArchiveFormat Format, string Repository, IReadOnlyList<string> Tags,
    IReadOnlyList<ArchivedImage> Images, IReadOnlyList<ArchiveExtraFile> ExtraFiles)
{
    /// <summary>The modification time of every entry; the Unix epoch unless the build has a source date epoch.</summary>
    public DateTimeOffset EntryTime { get; init; } = DateTimeOffset.UnixEpoch;

    /// <summary>The tags as written, each once, in the order given.</summary>
    public IReadOnlyList<string> DistinctTags => [.. Tags.Distinct(StringComparer.Ordinal)];

    /// <summary>Every name of the image: repository:tag, in the order of <see cref="DistinctTags"/>.</summary>
    public IReadOnlyList<string> References => [.. DistinctTags.Select(t => $"{Repository}:{t}")];

    // Names an extra file cannot take: the layout's or the saved image's own.
    private static readonly string[] ReservedNames = ["oci-layout", "index.json", "manifest.json", "repositories"];

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> for a request no archive can be written for, before anything is read
    /// from the engine: no tag or image, several images in the docker format, two images of one platform, an extra file
    /// name that is not a plain relative path, too long for a tar header, or one the archive's own entries use.
    /// </summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path))
        {
            throw new ArgumentException("The archive path is empty.", nameof(Path));
        }
        if (string.IsNullOrWhiteSpace(Repository) || Tags.Count == 0 || Tags.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("An archive names its image by a repository and at least one tag, none empty.", nameof(Tags));
        }
        if (Images.Count == 0)
        {
            throw new ArgumentException("An archive holds at least one image.", nameof(Images));
        }
        if (Format == ArchiveFormat.Docker && Images.Count > 1)
        {
            throw new ArgumentException($"The docker archive format holds one platform's image; {Images.Count} were given "
                + $"({string.Join(", ", Images.Select(i => i.Platform))}). The oci format holds several.", nameof(Images));
        }
        if (Images.GroupBy(i => i.Platform).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ArgumentException($"Two images are for {twice.Key}: an archive holds one per platform.", nameof(Images));
        }
        foreach (var file in ExtraFiles)
        {
            var parts = file.Name.Split('/');
            if (file.Name.Length == 0 || parts.Any(p => p is "" or "." or "..") || ReservedNames.Contains(file.Name)
                || parts[0] == "blobs" || SavedImage.IsSavedImageName(file.Name) || !ArchiveTarWriter.Fits(file.Name))
            {
                throw new ArgumentException($"'{file.Name}' cannot name a file of the archive: a relative path (a/b.json) "
                    + "of at most 255 bytes, not under blobs/ nor one of oci-layout, index.json, manifest.json, repositories, "
                    + "nor starting with the 64 hex digits that name a saved image's layers and config.", nameof(ExtraFiles));
            }
        }
        if (ExtraFiles.GroupBy(f => f.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } repeated)
        {
            throw new ArgumentException($"Two extra files are named {repeated.Key}.", nameof(ExtraFiles));
        }
    }
}
