using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>
/// A `docker save` archive of one image that `docker load` (Docker 20.10 too) takes under every name asked: the save
/// stream copied through entry by entry (headers made deterministic), manifest.json's RepoTags (and the legacy
/// repositories file, when the save has one) naming each repository:tag, then the extra files at their names.
/// </summary>
internal static class DockerArchiveWriter
{
    /// <returns>The image id (the config's digest).</returns>
    public static async Task<string> WriteAsync(ArchiveTarWriter tar, ArchiveRequest request, SavedImage.Save save, CancellationToken cancellationToken)
    {
        var image = request.Images.Single();
        // manifest.json and repositories are rewritten, at the end (where `docker save` puts them); the other small
        // entries (the config, the v1 json files) are kept to find the config by its name.
        var rewritten = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var small = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var files = new HashSet<string>(StringComparer.Ordinal);
        await SavedImage.ReadAsync(save, image, async (entry, name) =>
        {
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    await tar.WriteFolderAsync(name, cancellationToken).ConfigureAwait(false);
                    break;
                case TarEntryType.SymbolicLink:
                    await tar.WriteSymlinkAsync(name, entry.LinkName, cancellationToken).ConfigureAwait(false);
                    files.Add(SavedImage.LinkTarget(name, entry.LinkName));
                    break;
                case TarEntryType.HardLink:
                    throw new InvalidDataException($"The save of {image.ImageId} holds a hard link ({name}), which a docker save archive does not.");
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile when name is "manifest.json" or "repositories":
                    rewritten[name] = await SavedImage.ReadAllAsync(entry, cancellationToken).ConfigureAwait(false);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile when SavedImage.IsLayer(name, entry.Length):
                    await tar.WriteFileAsync(name, entry.Length, entry.DataStream ?? Stream.Null, cancellationToken).ConfigureAwait(false);
                    files.Add(name);
                    break;
                default:
                    var content = await SavedImage.ReadAllAsync(entry, cancellationToken).ConfigureAwait(false);
                    small[name] = content;
                    files.Add(name);
                    await tar.WriteFileAsync(name, content, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }, cancellationToken).ConfigureAwait(false);

        var manifest = SavedImage.ReadManifest(rewritten.GetValueOrDefault("manifest.json")
            ?? throw new InvalidDataException($"The save of {image.ImageId} has no manifest.json."), image.ImageId);
        var config = SavedImage.CheckConfig(small.GetValueOrDefault(SavedImage.Normalize(manifest.Config))
            ?? throw new InvalidDataException($"The save of {image.ImageId} has no config {manifest.Config}, which its manifest.json names."), image);
        if (manifest.Layers.FirstOrDefault(l => !files.Contains(SavedImage.Normalize(l))) is { } missing)
        {
            throw new InvalidDataException($"The save of {image.ImageId} has no layer {missing}, which its manifest.json names.");
        }
        manifest.Json["RepoTags"] = new JsonArray([.. request.References.Select(r => JsonValue.Create(r))]);
        await tar.WriteFileAsync("manifest.json", Encoding.UTF8.GetBytes(new JsonArray(manifest.Json.DeepClone()).ToJsonString()), cancellationToken).ConfigureAwait(false);
        if (rewritten.TryGetValue("repositories", out var repositories) && TopLayerId(repositories) is { } topLayer)
        {
            var tags = new JsonObject();
            foreach (var tag in request.DistinctTags)
            {
                tags[tag] = topLayer;
            }
            await tar.WriteFileAsync("repositories", Encoding.UTF8.GetBytes(new JsonObject { [request.Repository] = tags }.ToJsonString()),
                cancellationToken).ConfigureAwait(false);
        }
        foreach (var file in request.ExtraFiles)
        {
            await tar.WriteFileAsync(file.Name, file.Content, cancellationToken).ConfigureAwait(false);
        }
        return config.Digest;
    }

    /// <summary>The v1 id the saved repositories file gives the image's tags (its top layer's).</summary>
    private static string? TopLayerId(byte[] repositories) =>
        JsonNode.Parse(repositories)?.AsObject().Select(r => r.Value).OfType<JsonObject>()
            .SelectMany(tags => tags.Select(t => t.Value?.GetValue<string>())).FirstOrDefault(id => id is not null);
}
