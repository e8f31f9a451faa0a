using System.Formats.Tar;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MakinaStates.Image.Sdk.Archive;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// An image made without any build: its layer tars (written with <see cref="PaxTarWriter"/>, so an ACL can ride in a
/// SCHILY.xattr record) and the `docker save` archive of it, shaped as Docker 20.10 writes one: the config first,
/// then a &lt;v1 id&gt;/ folder per layer in the order of the ids (here the reverse of the layers'), manifest.json and
/// repositories last. `docker load` of it gives the image on an engine; the archive tests read it as a save stream.
/// </summary>
public sealed record SyntheticImageSave(string ImageId, ImagePlatform Platform, IReadOnlyList<string> DiffIds, byte[] Config, byte[] Save)
{
    /// <summary>The save as the engine streams it: not seekable.</summary>
    public Stream OpenStream() => PipeReader.Create(new MemoryStream(Save)).AsStream();

    public ArchivedImage Image => new(ImageId, Platform);

    /// <summary>A layer tar of the given entries.</summary>
    public static byte[] Layer(params (PaxTarWriter.Entry Entry, byte[] Content)[] entries)
    {
        using var layer = new MemoryStream();
        var writer = new PaxTarWriter(layer);
        foreach (var (entry, content) in entries)
        {
            writer.WriteEntryAsync(entry with { Size = entry.Type == PaxTarWriter.EntryType.File ? content.Length : 0 }, new MemoryStream(content),
                CancellationToken.None).GetAwaiter().GetResult();
        }
        writer.FinishAsync(CancellationToken.None).GetAwaiter().GetResult();
        return layer.ToArray();
    }

    /// <summary>A file of a layer: mode, owner, content and xattrs.</summary>
    public static (PaxTarWriter.Entry, byte[]) File(string name, string content, int mode = 0x1A4, long uid = 0, long gid = 0,
        IReadOnlyDictionary<string, byte[]>? xattrs = null) =>
        (new PaxTarWriter.Entry(name, PaxTarWriter.EntryType.File, mode, uid, gid, DateTimeOffset.FromUnixTimeSeconds(1700000000))
        {
            Xattrs = xattrs ?? new Dictionary<string, byte[]>(),
        }, Encoding.UTF8.GetBytes(content));

    public static (PaxTarWriter.Entry, byte[]) Folder(string name) =>
        (new PaxTarWriter.Entry(name, PaxTarWriter.EntryType.Directory, 0x1ED, 0, 0, DateTimeOffset.FromUnixTimeSeconds(1700000000)), []);

    /// <param name="repoTag">The name `docker load` gives it (manifest.json's RepoTags and repositories); none when null.</param>
    /// <param name="diffIds">The config's rootfs.diff_ids; the layers' own digests when null.</param>
    public static SyntheticImageSave Create(ImagePlatform platform, IReadOnlyList<byte[]> layers, string? repoTag = null, IReadOnlyList<string>? diffIds = null)
    {
        diffIds ??= [.. layers.Select(l => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(l)))];
        var config = new JsonObject
        {
            ["architecture"] = platform.Architecture,
            ["config"] = new JsonObject { ["Cmd"] = new JsonArray("/bin/true") },
            ["created"] = "2024-01-01T00:00:00Z",
            ["history"] = new JsonArray([.. layers.Select((_, i) => new JsonObject { ["created"] = "2024-01-01T00:00:00Z", ["created_by"] = $"synthetic layer {i}" })]),
            ["os"] = platform.Os,
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray([.. diffIds.Select(d => JsonValue.Create(d))]) },
        };
        if (platform.Variant is { } variant)
        {
            config["variant"] = variant;
        }
        var configBytes = Encoding.UTF8.GetBytes(config.ToJsonString());
        var imageHex = Convert.ToHexStringLower(SHA256.HashData(configBytes));
        // v1 ids whose order is the reverse of the layers' (a save lists folders by id, not by layer).
        var v1Ids = layers.Select((l, i) => (char)('9' - i) + Convert.ToHexStringLower(SHA256.HashData([.. Encoding.UTF8.GetBytes(imageHex), (byte)i]))[1..]).ToList();

        using var save = new MemoryStream();
        using (var writer = new TarWriter(save, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Add(string name, byte[]? content)
            {
                var entry = new UstarTarEntry(content is null ? TarEntryType.Directory : TarEntryType.RegularFile, name)
                {
                    Mode = (UnixFileMode)(content is null ? 0x1ED : 0x1A4),
                    ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1700000000),
                };
                if (content is not null)
                {
                    entry.DataStream = new MemoryStream(content);
                }
                writer.WriteEntry(entry);
            }
            Add(imageHex + ".json", configBytes);
            foreach (var i in Enumerable.Range(0, layers.Count).OrderBy(i => v1Ids[i], StringComparer.Ordinal))
            {
                Add(v1Ids[i] + "/", null);
                Add(v1Ids[i] + "/VERSION", "1.0"u8.ToArray());
                Add(v1Ids[i] + "/json", Encoding.UTF8.GetBytes(new JsonObject { ["id"] = v1Ids[i] }.ToJsonString()));
                Add(v1Ids[i] + "/layer.tar", layers[i]);
            }
            var manifest = new JsonArray(new JsonObject
            {
                ["Config"] = imageHex + ".json",
                ["RepoTags"] = repoTag is null ? null : new JsonArray(repoTag),
                ["Layers"] = new JsonArray([.. v1Ids.Select(id => JsonValue.Create(id + "/layer.tar"))]),
            });
            Add("manifest.json", Encoding.UTF8.GetBytes(manifest.ToJsonString()));
            if (repoTag is not null)
            {
                var (repository, tag) = ImageReference.SplitTag(repoTag);
                Add("repositories", Encoding.UTF8.GetBytes(new JsonObject { [repository] = new JsonObject { [tag] = v1Ids[^1] } }.ToJsonString()));
            }
        }
        return new SyntheticImageSave("sha256:" + imageHex, platform, diffIds, configBytes, save.ToArray());
    }
}
