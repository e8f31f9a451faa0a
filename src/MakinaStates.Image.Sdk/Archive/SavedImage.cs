using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>
/// The small parts of a `docker save` archive of one image: manifest.json (which file is the config, which are the
/// layers, in order) and the config (the image id is its digest; rootfs.diff_ids are the layers' digests).
/// Docker 20.10 names layers &lt;v1 id&gt;/layer.tar; Podman's compat API &lt;digest&gt;.tar, with the v1 names as
/// symbolic links to them.
/// </summary>
internal static partial class SavedImage
{
    /// <summary>The saved image starts the engine's stream to the save of <paramref name="image"/>.</summary>
    public delegate Task<Stream> Save(ArchivedImage image, CancellationToken cancellationToken);

    public sealed record Manifest(string Config, IReadOnlyList<string> Layers, JsonObject Json);

    public sealed record Config(string Digest, ImagePlatform Platform, IReadOnlyList<string> DiffIds);

    /// <summary>Entries larger than this (and every *.tar) are layers to stream; the rest is read whole.</summary>
    public const long SmallEntryLimit = 4 << 20;

    /// <summary>
    /// Reads the save of <paramref name="image"/> entry by entry, each handed to <paramref name="onEntry"/> with its
    /// name as manifest.json writes it, its content readable until it returns. Folders, files and links only.
    /// </summary>
    public static async Task ReadAsync(Save save, ArchivedImage image, Func<TarEntry, string, Task> onEntry, CancellationToken cancellationToken)
    {
        var saved = await save(image, cancellationToken).ConfigureAwait(false);
        await using (saved.ConfigureAwait(false))
        {
            // A read the engine's stream does not end on cancellation ends when the stream goes.
            using var stop = cancellationToken.Register(saved.Dispose);
            var reader = new TarReader(saved, leaveOpen: true);
            await using (reader.ConfigureAwait(false))
            {
                while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
                {
                    if (entry.EntryType is not (TarEntryType.Directory or TarEntryType.RegularFile or TarEntryType.V7RegularFile
                        or TarEntryType.SymbolicLink or TarEntryType.HardLink))
                    {
                        throw new InvalidDataException($"The save of {image.ImageId} holds a {entry.EntryType} entry ({entry.Name}), which a docker save archive does not.");
                    }
                    await onEntry(entry, Normalize(entry.Name)).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>A small entry's content.</summary>
    public static async Task<byte[]> ReadAllAsync(TarEntry entry, CancellationToken cancellationToken)
    {
        var bytes = new byte[entry.Length];
        if (entry.DataStream is { } data)
        {
            await data.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
        }
        return bytes;
    }

    public static Manifest ReadManifest(byte[] json, string image)
    {
        var images = JsonNode.Parse(json)?.AsArray() ?? throw new InvalidDataException($"The save of {image} has an empty manifest.json.");
        if (images.Count != 1 || images[0] is not JsonObject entry)
        {
            throw new InvalidDataException($"The save of {image} lists {images.Count} images in its manifest.json, not one.");
        }
        var config = entry["Config"]?.GetValue<string>() ?? throw new InvalidDataException($"The save of {image} names no config in its manifest.json.");
        var layers = entry["Layers"]?.AsArray().Select(l => l!.GetValue<string>()).ToList() ?? [];
        return new Manifest(config, layers, entry);
    }

    public static Config ReadConfig(byte[] json)
    {
        var config = JsonNode.Parse(json)!.AsObject();
        var diffIds = config["rootfs"]?["diff_ids"]?.AsArray().Select(d => d!.GetValue<string>()).ToList() ?? [];
        var platform = new ImagePlatform(config["os"]?.GetValue<string>() ?? "linux", config["architecture"]?.GetValue<string>() ?? "",
            config["variant"]?.GetValue<string>() is { Length: > 0 } variant ? variant : null);
        return new Config("sha256:" + Convert.ToHexStringLower(SHA256.HashData(json)), platform, diffIds);
    }

    /// <summary>The config read is the image's asked for, on the platform the caller said.</summary>
    public static Config CheckConfig(byte[] json, ArchivedImage image)
    {
        var config = ReadConfig(json);
        if (!string.Equals(config.Digest, image.ImageId, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"The engine saved the image {config.Digest} for {image.ImageId}.");
        }
        if (config.Platform != image.Platform)
        {
            throw new InvalidDataException($"The image {image.ImageId} is for {config.Platform}, not {image.Platform} as the archive was asked to say.");
        }
        return config;
    }

    /// <summary>Where a link of the saved archive points to, as an entry name (Podman's &lt;v1 id&gt;/layer.tar → ../&lt;digest&gt;.tar).</summary>
    public static string LinkTarget(string name, string target)
    {
        var folder = Path.GetDirectoryName(name) ?? "";
        var full = Path.GetFullPath(Path.Combine("/", folder, target));
        return full.TrimStart('/');
    }

    /// <summary>A name as the save's manifest.json says it: no leading ./ or /.</summary>
    public static string Normalize(string name) => Engine.LayerTarReader.Normalize(name);

    /// <summary>Whether a saved entry is a layer, streamed as it comes rather than read whole.</summary>
    public static bool IsLayer(string name, long size) => size > SmallEntryLimit || name.EndsWith(".tar", StringComparison.Ordinal);

    /// <summary>A name of the save's own besides manifest.json and repositories: &lt;v1 id&gt;/…, &lt;digest&gt;.json, &lt;digest&gt;.tar.</summary>
    public static bool IsSavedImageName(string name) => SavedImageName().IsMatch(name);

    [GeneratedRegex("^[0-9a-f]{64}([/.]|$)")]
    private static partial Regex SavedImageName();
}
