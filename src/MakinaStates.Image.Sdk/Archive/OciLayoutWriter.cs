using System.Formats.Tar;
using System.Text.Encodings.Web;
using System.Text.Json;
using MakinaStates.Image.Sdk.Registry;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>
/// An OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md) in a tar, made from
/// each platform's `docker save` stream as it comes: the layer tars become blobs as they are (uncompressed, so their
/// digest is the diff id the config lists, checked), the config is the engine's byte for byte (its digest stays the
/// image id), and the manifests, the image index of several platforms and index.json are written here.
/// Entries: oci-layout, blobs/sha256/ (each image's layers in the save's order, its config, its manifest; the index;
/// the extra files' blobs), the extra files at their names, index.json last.
/// </summary>
internal static class OciLayoutWriter
{
    public const string LayerMediaType = "application/vnd.oci.image.layer.v1.tar";
    public const string ConfigMediaType = "application/vnd.oci.image.config.v1+json";
    /// <summary>The tag, as skopeo's and umoci's oci:&lt;dir&gt;:&lt;tag&gt; look it up.</summary>
    public const string RefNameAnnotation = "org.opencontainers.image.ref.name";
    /// <summary>The whole name, which `ctr images import` and `docker load` of Docker 25+ name the image by.</summary>
    public const string ImageNameAnnotation = "io.containerd.image.name";

    private static readonly JsonWriterOptions JsonOptions = new()
    {
        Indented = true,
        NewLine = "\n",
        // The "+" of media types stays "+".
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <returns>The digest of what index.json points at: the image manifest of one platform, the image index of several.</returns>
    public static async Task<string> WriteAsync(ArchiveTarWriter tar, ArchiveRequest request, SavedImage.Save save, CancellationToken cancellationToken)
    {
        await tar.WriteFileAsync("oci-layout", """{"imageLayoutVersion":"1.0.0"}"""u8.ToArray(), cancellationToken).ConfigureAwait(false);
        await tar.WriteFolderAsync(ArchiveTarWriter.BlobFolder, cancellationToken).ConfigureAwait(false);
        var manifests = new List<ImageIndex.Entry>();
        foreach (var image in request.Images)
        {
            manifests.Add(new ImageIndex.Entry(await WriteImageAsync(tar, image, save, cancellationToken).ConfigureAwait(false), image.Platform));
        }
        ManifestDescriptor top;
        if (manifests.Count == 1)
        {
            top = manifests[0].Manifest;
        }
        else
        {
            var (mediaType, json) = ImageIndex.Create(manifests);
            top = new ManifestDescriptor(mediaType, await tar.WriteBlobAsync(json, cancellationToken).ConfigureAwait(false), json.Length);
        }
        foreach (var file in request.ExtraFiles)
        {
            await tar.WriteBlobAsync(file.Content, cancellationToken).ConfigureAwait(false);
        }
        foreach (var file in request.ExtraFiles)
        {
            await tar.WriteFileAsync(file.Name, file.Content, cancellationToken).ConfigureAwait(false);
        }
        var index = IndexJson(top, manifests.Count == 1 ? manifests[0].Platform : null, request);
        await tar.WriteFileAsync("index.json", index, cancellationToken).ConfigureAwait(false);
        return top.Digest;
    }

    /// <summary>One platform's image: its layers (streamed), config and manifest as blobs; the manifest's descriptor.</summary>
    private static async Task<ManifestDescriptor> WriteImageAsync(ArchiveTarWriter tar, ArchivedImage image, SavedImage.Save save, CancellationToken cancellationToken)
    {
        var small = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var streamed = new Dictionary<string, ManifestDescriptor>(StringComparer.Ordinal);
        var links = new Dictionary<string, string>(StringComparer.Ordinal);
        await SavedImage.ReadAsync(save, image, async (entry, name) =>
        {
            switch (entry.EntryType)
            {
                case TarEntryType.SymbolicLink:
                    links[name] = SavedImage.LinkTarget(name, entry.LinkName);
                    break;
                case TarEntryType.HardLink:
                    links[name] = SavedImage.Normalize(entry.LinkName);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile when SavedImage.IsLayer(name, entry.Length):
                    var digest = await tar.WriteBlobAsync(entry.Length, entry.DataStream ?? Stream.Null, cancellationToken).ConfigureAwait(false);
                    streamed[name] = new ManifestDescriptor(LayerMediaType, digest, entry.Length);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                    small[name] = await SavedImage.ReadAllAsync(entry, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }, cancellationToken).ConfigureAwait(false);

        string Resolve(string name)
        {
            name = SavedImage.Normalize(name);
            for (var hops = 0; links.TryGetValue(name, out var target) && hops < 8; hops++)
            {
                name = target;
            }
            return name;
        }

        var manifest = SavedImage.ReadManifest(small.GetValueOrDefault("manifest.json")
            ?? throw new InvalidDataException($"The save of {image.ImageId} has no manifest.json."), image.ImageId);
        var configJson = small.GetValueOrDefault(Resolve(manifest.Config))
            ?? throw new InvalidDataException($"The save of {image.ImageId} has no config {manifest.Config}, which its manifest.json names.");
        var config = SavedImage.CheckConfig(configJson, image);
        if (config.DiffIds.Count != manifest.Layers.Count)
        {
            throw new InvalidDataException($"The save of {image.ImageId} has {manifest.Layers.Count} layers, but its config lists {config.DiffIds.Count} diff ids.");
        }
        var layers = new List<ManifestDescriptor>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < manifest.Layers.Count; i++)
        {
            var path = Resolve(manifest.Layers[i]);
            used.Add(path);
            var layer = streamed.GetValueOrDefault(path);
            if (layer is null && small.TryGetValue(path, out var content))
            {
                layer = new ManifestDescriptor(LayerMediaType, await tar.WriteBlobAsync(content, cancellationToken).ConfigureAwait(false), content.Length);
            }
            if (layer is null)
            {
                throw new InvalidDataException($"The save of {image.ImageId} has no layer {manifest.Layers[i]}, which its manifest.json names.");
            }
            if (layer.Digest != config.DiffIds[i])
            {
                throw new InvalidDataException($"The layer {manifest.Layers[i]} of {image.ImageId} hashes to {layer.Digest}, which is not its diff id in the "
                    + $"image's config (rootfs.diff_ids[{i}] is {config.DiffIds[i]}): the saved layer is not the one the image holds.");
            }
            layers.Add(layer);
        }
        if (streamed.Keys.FirstOrDefault(k => !used.Contains(k)) is { } stray)
        {
            throw new InvalidDataException($"The save of {image.ImageId} holds {stray}, which its manifest.json does not name as a layer.");
        }
        var configDescriptor = new ManifestDescriptor(ConfigMediaType, await tar.WriteBlobAsync(configJson, cancellationToken).ConfigureAwait(false), configJson.Length);
        var manifestJson = ManifestJson(configDescriptor, layers);
        return new ManifestDescriptor(RegistryApi.OciManifest, await tar.WriteBlobAsync(manifestJson, cancellationToken).ConfigureAwait(false), manifestJson.Length);
    }

    private static byte[] ManifestJson(ManifestDescriptor config, IReadOnlyList<ManifestDescriptor> layers) => Json(json =>
    {
        json.WriteStartObject();
        json.WriteNumber("schemaVersion", 2);
        json.WriteString("mediaType", RegistryApi.OciManifest);
        json.WritePropertyName("config");
        WriteDescriptor(json, config);
        json.WriteStartArray("layers");
        foreach (var layer in layers)
        {
            WriteDescriptor(json, layer);
        }
        json.WriteEndArray();
        json.WriteEndObject();
    });

    /// <summary>index.json: the image under each tag, one descriptor a tag.</summary>
    private static byte[] IndexJson(ManifestDescriptor top, ImagePlatform? platform, ArchiveRequest request) => Json(json =>
    {
        json.WriteStartObject();
        json.WriteNumber("schemaVersion", 2);
        json.WriteString("mediaType", RegistryApi.OciIndex);
        json.WriteStartArray("manifests");
        foreach (var tag in request.DistinctTags)
        {
            WriteDescriptor(json, top, platform, new(StringComparer.Ordinal)
            {
                [ImageNameAnnotation] = $"{request.Repository}:{tag}",
                [RefNameAnnotation] = tag,
            });
        }
        json.WriteEndArray();
        json.WriteEndObject();
    });

    private static void WriteDescriptor(Utf8JsonWriter json, ManifestDescriptor descriptor, ImagePlatform? platform = null,
        SortedDictionary<string, string>? annotations = null)
    {
        json.WriteStartObject();
        json.WriteString("mediaType", descriptor.MediaType);
        json.WriteString("digest", descriptor.Digest);
        json.WriteNumber("size", descriptor.Size);
        if (platform is not null)
        {
            ImageIndex.WritePlatform(json, platform);
        }
        if (annotations is not null)
        {
            json.WriteStartObject("annotations");
            foreach (var (key, value) in annotations)
            {
                json.WriteString(key, value);
            }
            json.WriteEndObject();
        }
        json.WriteEndObject();
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, JsonOptions))
        {
            write(json);
        }
        return buffer.ToArray();
    }
}
