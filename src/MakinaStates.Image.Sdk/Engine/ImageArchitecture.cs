using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Gives an imported image the platform its files are for. Docker 20.10's import records the engine's own architecture
/// whatever the platform asked (and `docker run --platform` then looks in a registry): the image is saved, its config
/// rewritten, and loaded back under the same name. The layers are streamed through unchanged, so the engine keeps them;
/// the commits made from it inherit the architecture.
/// </summary>
public static class ImageArchitecture
{
    public static bool Matches(ImageInspectResponse image, ImagePlatform platform) =>
        image.Architecture == platform.Architecture && (string.IsNullOrEmpty(image.Os) ? "linux" : image.Os) == platform.Os
        && (platform.Variant is null || image.Variant == platform.Variant);

    /// <summary>The image's id after it says <paramref name="platform"/> (unchanged when it already does).</summary>
    public static async Task<string> EnsureAsync(DockerEngine engine, string reference, ImagePlatform platform, Action<string> log,
        CancellationToken cancellationToken)
    {
        var image = await engine.Client.Images.InspectImageAsync(reference, cancellationToken).ConfigureAwait(false);
        if (Matches(image, platform))
        {
            return image.ID;
        }
        log($"Giving {reference} the platform {platform} (the engine recorded {image.Os}/{image.Architecture}).");
        var error = await ImageArchive.LoadAsync(engine, async (output, ct) =>
        {
            await using var saved = await ImageArchive.SaveAsync(engine, reference, ct).ConfigureAwait(false);
            await RewriteArchiveAsync(saved, output, platform, ct).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        var loaded = await engine.Client.Images.InspectImageAsync(reference, cancellationToken).ConfigureAwait(false);
        if (error is not null || !Matches(loaded, platform))
        {
            throw new ImageBuildException(MsiCodes.BaseImportRefused, MsiMessages.Format("PlatformNotSet", reference, platform,
                engine.Endpoint.Display, error ?? $"it still says {loaded.Os}/{loaded.Architecture}"));
        }
        // The import as the engine made it is untagged now: it goes (its layers are the loaded image's), unless still
        // used (a container of an earlier build): then it stays, unnamed, until that goes.
        await ImageArchive.RemoveReplacedAsync(engine, image.ID, loaded.ID).ConfigureAwait(false);
        return loaded.ID;
    }

    /// <summary>
    /// A `docker save` archive with every image config saying <paramref name="platform"/>: configs are renamed by their
    /// new digest and manifest.json follows; layers pass through as they are.
    /// </summary>
    public static async Task RewriteArchiveAsync(Stream archive, Stream output, ImagePlatform platform, CancellationToken cancellationToken)
    {
        var renamed = new Dictionary<string, string>(StringComparer.Ordinal);
        var held = new List<(string Name, byte[] Data)>();
        await using var reader = new TarReader(archive, leaveOpen: true);
        // Our writer, not TarWriter: TarWriter will not copy an entry of unknown-length source into a pipe.
        var writer = new Injection.PaxTarWriter(output);
        while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            var name = entry.Name;
            var isConfig = entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile
                && !name.Contains('/') && name.EndsWith(".json", StringComparison.Ordinal) && name != "manifest.json";
            if (isConfig || name is "manifest.json" or "repositories")
            {
                using var buffer = new MemoryStream();
                if (entry.DataStream is { } data)
                {
                    await data.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
                }
                if (isConfig)
                {
                    var config = JsonNode.Parse(buffer.ToArray())!.AsObject();
                    config["architecture"] = platform.Architecture;
                    config["os"] = platform.Os;
                    if (platform.Variant is null)
                    {
                        config.Remove("variant");
                    }
                    else
                    {
                        config["variant"] = platform.Variant;
                    }
                    var bytes = System.Text.Encoding.UTF8.GetBytes(config.ToJsonString());
                    var newName = Convert.ToHexStringLower(SHA256.HashData(bytes)) + ".json";
                    renamed[name] = newName;
                    held.Add((newName, bytes));
                }
                else
                {
                    held.Add((name, buffer.ToArray()));
                }
                continue;
            }
            var type = entry.EntryType switch
            {
                TarEntryType.Directory => Injection.PaxTarWriter.EntryType.Directory,
                TarEntryType.SymbolicLink => Injection.PaxTarWriter.EntryType.Symlink,
                TarEntryType.HardLink => Injection.PaxTarWriter.EntryType.HardLink,
                TarEntryType.RegularFile or TarEntryType.V7RegularFile => Injection.PaxTarWriter.EntryType.File,
                _ => throw new InvalidDataException($"The saved image holds a {entry.EntryType} entry ({name}), which a docker save archive does not."),
            };
            await writer.WriteEntryAsync(new Injection.PaxTarWriter.Entry(name, type, (int)entry.Mode, entry.Uid, entry.Gid, entry.ModificationTime)
            {
                Size = type == Injection.PaxTarWriter.EntryType.File ? entry.Length : 0,
                LinkName = type is Injection.PaxTarWriter.EntryType.Symlink or Injection.PaxTarWriter.EntryType.HardLink ? entry.LinkName : null,
            }, entry.DataStream, cancellationToken).ConfigureAwait(false);
        }
        // Small files last, once every config's new name is known.
        foreach (var (name, data) in held)
        {
            var bytes = data;
            if (name == "manifest.json")
            {
                var manifest = JsonNode.Parse(data)!.AsArray();
                foreach (var image in manifest.OfType<JsonObject>())
                {
                    if (image["Config"]?.GetValue<string>() is { } config && renamed.TryGetValue(config, out var newConfig))
                    {
                        image["Config"] = newConfig;
                    }
                }
                bytes = System.Text.Encoding.UTF8.GetBytes(manifest.ToJsonString());
            }
            await writer.WriteEntryAsync(new Injection.PaxTarWriter.Entry(name, Injection.PaxTarWriter.EntryType.File, 0x1A4, 0, 0, DateTimeOffset.UnixEpoch)
            {
                Size = bytes.Length,
            }, new MemoryStream(bytes), cancellationToken).ConfigureAwait(false);
        }
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
    }
}
