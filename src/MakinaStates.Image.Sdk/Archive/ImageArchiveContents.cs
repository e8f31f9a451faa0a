using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using MakinaStates.Image.Sdk.Registry;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>
/// What an archive file holds, for the up-to-date check: read from its tar headers and small JSON entries only (the
/// layers are seeked over, never read). A build keeps an archive that <see cref="Holds"/> what it would write.
/// </summary>
/// <param name="Digest">As <see cref="WrittenArchive.Digest"/>: OCI, what index.json points at; docker, the image id.</param>
/// <param name="References">Every repository:tag the image is named by, in the archive's order.</param>
/// <param name="Images">Each image: its id (its config's digest) and the platform its config says.</param>
/// <param name="ExtraFiles">The files beside the images, in the archive's order, with their content's digest.</param>
public sealed record ImageArchiveContents(ArchiveFormat Format, string Digest, IReadOnlyList<string> References,
    IReadOnlyList<ArchivedImage> Images, IReadOnlyList<ArchivedFile> ExtraFiles)
{
    // A manifest, index or config read whole: far beyond any of them, far below a layer.
    private const long JsonLimit = 4 << 20;

    /// <summary>Whether writing <paramref name="request"/> would give this archive (the entries' time aside).</summary>
    public bool Holds(ArchiveRequest request) =>
        Format == request.Format && References.SequenceEqual(request.References) && Images.SequenceEqual(request.Images)
        && ExtraFiles.SequenceEqual(request.ExtraFiles.Select(f => new ArchivedFile(f.Name, f.Digest)));

    /// <summary>
    /// What the archive at <paramref name="path"/> holds; null when there is no file there, or it is not an archive of
    /// one image per platform under every name as <see cref="ImageArchiveWriter"/> writes them (not a tar, no layout nor
    /// manifest.json, a blob missing or of another size, names pointing at different images).
    /// </summary>
    public static async Task<ImageArchiveContents?> ReadAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 12);
        await using (file.ConfigureAwait(false))
        {
            try
            {
                var entries = await ReadEntriesAsync(file, cancellationToken).ConfigureAwait(false);
                var archive = new Archive(file, entries);
                return entries.ContainsKey("oci-layout") && entries.ContainsKey("index.json") ? await ReadOciAsync(archive, cancellationToken).ConfigureAwait(false)
                    : entries.ContainsKey("manifest.json") ? await ReadDockerAsync(archive, cancellationToken).ConfigureAwait(false)
                    : null;
            }
            // InvalidOperationException, NullReferenceException: a JSON value of another kind, or missing (the ! lookups).
            catch (Exception e) when (e is InvalidDataException or JsonException or InvalidOperationException or FormatException
                or KeyNotFoundException or EndOfStreamException or ArgumentException or NullReferenceException)
            {
                // Not a tar, or not one of ours: the caller writes it again.
                return null;
            }
        }
    }

    private sealed record Entry(string Name, TarEntryType Type, long Offset, long Length);

    /// <summary>Every entry of the tar, in order, its content skipped (the file is seekable).</summary>
    private static async Task<Dictionary<string, Entry>> ReadEntriesAsync(FileStream file, CancellationToken cancellationToken)
    {
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var reader = new TarReader(file, leaveOpen: true);
        await using (reader.ConfigureAwait(false))
        {
            while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
            {
                var name = SavedImage.Normalize(entry.Name);
                entries[name] = new Entry(name, entry.EntryType, entry.DataOffset, entry.Length);
            }
        }
        return entries;
    }

    /// <summary>The archive's entries, and their content read from the file where needed.</summary>
    private sealed class Archive(FileStream file, Dictionary<string, Entry> entries)
    {
        public IEnumerable<Entry> Entries => entries.Values;

        public bool Has(string name, long length) => entries.TryGetValue(name, out var entry) && IsFile(entry) && entry.Length == length;

        public async Task<byte[]> ReadAsync(string name, CancellationToken cancellationToken)
        {
            var entry = entries[name];
            if (!IsFile(entry) || entry.Length > JsonLimit)
            {
                throw new InvalidDataException($"{name} is not a small file");
            }
            var bytes = new byte[entry.Length];
            file.Position = entry.Offset;
            await file.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
            return bytes;
        }

        /// <summary>A blob's content, checked against its descriptor (size and digest).</summary>
        public async Task<byte[]> ReadBlobAsync(JsonNode descriptor, CancellationToken cancellationToken)
        {
            var digest = descriptor["digest"]!.GetValue<string>();
            var bytes = await ReadAsync(BlobName(digest), cancellationToken).ConfigureAwait(false);
            if (bytes.Length != descriptor["size"]!.GetValue<long>() || "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes)) != digest)
            {
                throw new InvalidDataException($"the blob {digest} is not what its descriptor says");
            }
            return bytes;
        }

        public async Task<string> DigestAsync(Entry entry, CancellationToken cancellationToken)
        {
            file.Position = entry.Offset;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 16];
            for (var remaining = entry.Length; remaining > 0;)
            {
                var read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new EndOfStreamException();
                }
                hash.AppendData(buffer, 0, read);
                remaining -= read;
            }
            return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
        }

        /// <summary>The files that are neither the layout's nor the image's, with their digests, in order.</summary>
        public async Task<List<ArchivedFile>> ExtraFilesAsync(Func<Entry, bool> isImages, CancellationToken cancellationToken)
        {
            var files = new List<ArchivedFile>();
            foreach (var entry in entries.Values.Where(e => IsFile(e) && !isImages(e)).OrderBy(e => e.Offset))
            {
                files.Add(new ArchivedFile(entry.Name, await DigestAsync(entry, cancellationToken).ConfigureAwait(false)));
            }
            return files;
        }

        private static bool IsFile(Entry entry) => entry.Type is TarEntryType.RegularFile or TarEntryType.V7RegularFile;
    }

    private static string BlobName(string digest) =>
        digest.StartsWith("sha256:", StringComparison.Ordinal) && digest.Length == 71 ? ArchiveTarWriter.BlobName(digest)
            : throw new InvalidDataException($"{digest} is not a sha256 digest");

    private static async Task<ImageArchiveContents?> ReadOciAsync(Archive archive, CancellationToken cancellationToken)
    {
        var index = JsonNode.Parse(await archive.ReadAsync("index.json", cancellationToken).ConfigureAwait(false))!;
        var named = index["manifests"]!.AsArray().Select(d => d!).ToList();
        if (named.Count == 0 || named.Select(d => d["digest"]!.GetValue<string>()).Distinct().Count() != 1)
        {
            return null;
        }
        var references = named.Select(d => d["annotations"]?[OciLayoutWriter.ImageNameAnnotation]?.GetValue<string>()).ToList();
        if (references.Any(r => r is null))
        {
            return null;
        }
        var top = named[0];
        var manifests = top["mediaType"]!.GetValue<string>() switch
        {
            RegistryApi.OciIndex => JsonNode.Parse(await archive.ReadBlobAsync(top, cancellationToken).ConfigureAwait(false))!["manifests"]!.AsArray()
                .Select(d => d!).ToList(),
            RegistryApi.OciManifest => [top],
            _ => null,
        };
        if (manifests is null)
        {
            return null;
        }
        var images = new List<ArchivedImage>();
        foreach (var descriptor in manifests)
        {
            var manifest = JsonNode.Parse(await archive.ReadBlobAsync(descriptor, cancellationToken).ConfigureAwait(false))!;
            var config = SavedImage.ReadConfig(await archive.ReadBlobAsync(manifest["config"]!, cancellationToken).ConfigureAwait(false));
            // The layers are there, of their size: their content is not read.
            if (manifest["layers"]!.AsArray().Any(l => !archive.Has(BlobName(l!["digest"]!.GetValue<string>()), l!["size"]!.GetValue<long>())))
            {
                return null;
            }
            images.Add(new ArchivedImage(config.Digest, config.Platform));
        }
        var extraFiles = await archive.ExtraFilesAsync(e => e.Name is "oci-layout" or "index.json" || e.Name.StartsWith(ArchiveTarWriter.BlobFolder, StringComparison.Ordinal),
            cancellationToken).ConfigureAwait(false);
        return new ImageArchiveContents(ArchiveFormat.Oci, top["digest"]!.GetValue<string>(), references!, images, extraFiles);
    }

    private static async Task<ImageArchiveContents?> ReadDockerAsync(Archive archive, CancellationToken cancellationToken)
    {
        // One image, or InvalidDataException.
        var manifest = SavedImage.ReadManifest(await archive.ReadAsync("manifest.json", cancellationToken).ConfigureAwait(false), "the archive");
        var references = manifest.Json["RepoTags"]?.AsArray().Select(t => t!.GetValue<string>()).ToList() ?? [];
        var configName = SavedImage.Normalize(manifest.Config);
        var config = SavedImage.ReadConfig(await archive.ReadAsync(configName, cancellationToken).ConfigureAwait(false));
        var layers = manifest.Layers.Select(SavedImage.Normalize).ToHashSet(StringComparer.Ordinal);
        if (!layers.All(l => archive.Entries.Any(e => e.Name == l)))
        {
            return null;
        }
        var extraFiles = await archive.ExtraFilesAsync(e => e.Name is "manifest.json" or "repositories" || e.Name == configName || layers.Contains(e.Name)
            || SavedImage.IsSavedImageName(e.Name), cancellationToken).ConfigureAwait(false);
        return new ImageArchiveContents(ArchiveFormat.Docker, config.Digest, references, [new ArchivedImage(config.Digest, config.Platform)], extraFiles);
    }
}
