using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// The top layer of a `docker save`-shaped archive written again: the saved xattrs added, everything else as it was
/// (and, with an epoch, clamped times and sorted entries that make the digest reproducible); the lower layer skipped.
/// </summary>
[TestClass]
public sealed class TopLayerRewriteTests
{
    private static readonly DateTimeOffset Old = DateTimeOffset.FromUnixTimeSeconds(946684800); // 2000
    private static readonly DateTimeOffset Late = DateTimeOffset.FromUnixTimeSeconds(1893456000); // 2030
    private static readonly DateTimeOffset Epoch = DateTimeOffset.FromUnixTimeSeconds(1704067200); // 2024
    private static readonly byte[] Capability = [0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    private static readonly byte[] AccessAcl = ContainerXattrs.ParseAcls("# file: /srv/zeta\nuser::rw-\nuser:1000:rw-\ngroup::r--\nmask::rw-\nother::---\n")["srv/zeta"][ContainerXattrs.Access];
    private static readonly byte[] DefaultAcl = ContainerXattrs.ParseAcls("# file: /srv/shared\nuser::rwx\ngroup::r-x\nother::---\ndefault:user::rwx\ndefault:group::r-x\ndefault:group:4243:rwx\ndefault:mask::rwx\ndefault:other::---\n")["srv/shared"][ContainerXattrs.Default];

    private static readonly Dictionary<string, IReadOnlyDictionary<string, byte[]>> Saved = new()
    {
        ["srv/zeta"] = new Dictionary<string, byte[]> { [ContainerXattrs.Access] = AccessAcl, ["user.x"] = [0, 0xFF, 1] },
        ["srv/shared"] = new Dictionary<string, byte[]> { [ContainerXattrs.Default] = DefaultAcl },
        ["srv/alpha"] = new Dictionary<string, byte[]> { ["user.y"] = "y"u8.ToArray(), ["security.capability"] = [9] },
        ["srv/.wh.gone"] = new Dictionary<string, byte[]> { ["user.z"] = [1] },
        ["etc/not-in-this-layer"] = new Dictionary<string, byte[]> { ["user.z"] = [1] },
    };

    private static List<(PaxTarWriter.Entry Entry, byte[] Content)> TopEntries() =>
    [
        (new PaxTarWriter.Entry("srv/", PaxTarWriter.EntryType.Directory, 0x1ED, 0, 0, Late), []),
        (new PaxTarWriter.Entry("srv/zeta", PaxTarWriter.EntryType.File, 0x1A0, 1000, 50, Old) { Size = 4 }, "zeta"u8.ToArray()),
        (new PaxTarWriter.Entry("srv/alpha", PaxTarWriter.EntryType.File, 0x9ED, 0, 0, Late) { Size = 5, Xattrs = new Dictionary<string, byte[]> { ["security.capability"] = Capability } }, "alpha"u8.ToArray()),
        (new PaxTarWriter.Entry("srv/.wh.gone", PaxTarWriter.EntryType.File, 0, 0, 0, Late), []),
        (new PaxTarWriter.Entry("srv/link", PaxTarWriter.EntryType.Symlink, 0x1FF, 0, 0, Old) { LinkName = "alpha" }, []),
        (new PaxTarWriter.Entry("srv/hard", PaxTarWriter.EntryType.HardLink, 0x1A0, 1000, 50, Old) { LinkName = "srv/zeta" }, []),
        (new PaxTarWriter.Entry("etc/.wh..wh..opq", PaxTarWriter.EntryType.File, 0, 0, 0, Late), []),
        (new PaxTarWriter.Entry("srv/shared/", PaxTarWriter.EntryType.Directory, 0x5F8, 4242, 4243, Old), []),
    ];

    [TestMethod]
    public async Task Without_an_epoch_the_saved_xattrs_are_added_and_everything_else_stays_as_it_was()
    {
        var top = TopEntries();
        var (archive, lowerPath, _, topDiff) = SavedArchive(top);
        using var spool = new Spool();

        var rewritten = await TopLayerRewrite.RewriteSavedAsync(new MemoryStream(archive), topDiff, 2, Saved, null, spool.File, CancellationToken.None);
        var output = await LoadArchiveAsync(rewritten);

        CollectionAssert.AreEqual(new[] { rewritten.DiffId[7..] + "/layer.tar", rewritten.ImageId[7..] + ".json", "manifest.json" }, output.Keys.ToArray(),
            "the new layer, its config and manifest.json: the lower layer is not sent");
        var manifest = JsonNode.Parse(output["manifest.json"])!.AsArray()[0]!;
        CollectionAssert.AreEqual(new[] { lowerPath, rewritten.DiffId[7..] + "/layer.tar" }, manifest["Layers"]!.AsArray().Select(l => l!.GetValue<string>()).ToArray());
        Assert.AreEqual("example/image:candidate", manifest["RepoTags"]![0]!.GetValue<string>());
        var layer = output[rewritten.DiffId[7..] + "/layer.tar"];
        Assert.AreEqual(rewritten.DiffId, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(layer)));
        Assert.AreEqual(rewritten.ImageId, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(output[rewritten.ImageId[7..] + ".json"])));
        var config = JsonNode.Parse(output[rewritten.ImageId[7..] + ".json"])!;
        CollectionAssert.AreEqual(new[] { DiffOf(LowerLayer()), rewritten.DiffId }, config["rootfs"]!["diff_ids"]!.AsArray().Select(d => d!.GetValue<string>()).ToArray());
        Assert.AreEqual("2030-01-01T00:00:00Z", config["created"]!.GetValue<string>(), "no epoch: the config keeps its time");
        Assert.AreEqual("0123456789ab", config["config"]!["Hostname"]!.GetValue<string>());

        var entries = await ReadLayerAsync(layer);
        CollectionAssert.AreEqual(top.Select(t => t.Entry.Name).ToArray(), entries.Select(e => e.Entry.Name).ToArray(), "the order is kept");
        foreach (var ((expected, content), (actual, actualContent)) in top.Zip(entries))
        {
            AssertSameEntry(expected, content, actual, actualContent, expected.ModificationTime);
        }
        var byName = entries.ToDictionary(e => e.Entry.Name, e => e.Entry.Xattrs);
        AssertXattrs(byName["srv/zeta"], (ContainerXattrs.Access, AccessAcl), ("user.x", [0, 0xFF, 1]));
        AssertXattrs(byName["srv/shared/"], (ContainerXattrs.Default, DefaultAcl));
        AssertXattrs(byName["srv/alpha"], ("security.capability", Capability), ("user.y", "y"u8.ToArray()));
        AssertXattrs(byName["srv/.wh.gone"]);
        AssertXattrs(byName["etc/.wh..wh..opq"]);
        AssertXattrs(byName["srv/"]);
        AssertXattrs(byName["srv/hard"]);
    }

    [TestMethod]
    public async Task With_an_epoch_times_are_clamped_entries_sorted_and_the_same_content_gives_the_same_bytes_whatever_its_order()
    {
        var top = TopEntries();
        var (archive, _, _, topDiff) = SavedArchive(top);
        // The same content as another readdir order writes it: reversed, and the other name of the hard link as the file.
        var reordered = top.AsEnumerable().Reverse().Where(t => t.Entry.Type != PaxTarWriter.EntryType.HardLink && t.Entry.Name != "srv/zeta").ToList();
        reordered.Add((top[1].Entry with { Name = "srv/hard" }, top[1].Content));
        reordered.Add((top[5].Entry with { Name = "srv/zeta", LinkName = "srv/hard" }, []));
        var (otherArchive, _, _, otherDiff) = SavedArchive(reordered);
        Assert.AreNotEqual(topDiff, otherDiff);

        var outputs = new List<(TopLayerRewrite.Rewritten Rewritten, byte[] Load)>();
        foreach (var (saved, diff) in new[] { (archive, topDiff), (archive, topDiff), (otherArchive, otherDiff) })
        {
            using var spool = new Spool();
            var rewritten = await TopLayerRewrite.RewriteSavedAsync(new MemoryStream(saved), diff, 2, Saved, Epoch, spool.File, CancellationToken.None);
            using var load = new MemoryStream();
            await TopLayerRewrite.WriteLoadArchiveAsync(rewritten, "example/image:candidate", load, CancellationToken.None);
            outputs.Add((rewritten, load.ToArray()));
        }

        CollectionAssert.AreEqual(outputs[0].Load, outputs[1].Load, "the same input twice: the same bytes");
        Assert.AreEqual(outputs[0].Rewritten.DiffId, outputs[2].Rewritten.DiffId, "another order of the same content: the same layer digest");
        Assert.AreEqual(outputs[0].Rewritten.ImageId, outputs[2].Rewritten.ImageId, "and the same image id");

        var output = await ReadArchiveAsync(outputs[0].Load);
        var entries = await ReadLayerAsync(output[outputs[0].Rewritten.DiffId[7..] + "/layer.tar"]);
        CollectionAssert.AreEqual(new[] { "etc/.wh..wh..opq", "srv/", "srv/.wh.gone", "srv/alpha", "srv/hard", "srv/link", "srv/shared/", "srv/zeta" },
            entries.Select(e => e.Entry.Name).ToArray(), "sorted by name, hard links last");
        var expected = top.ToDictionary(t => t.Entry.Name);
        foreach (var (actual, content) in entries.Where(e => e.Entry.Name is not ("srv/hard" or "srv/zeta")))
        {
            var (entry, expectedContent) = expected[actual.Name];
            AssertSameEntry(entry, expectedContent, actual, content, entry.ModificationTime > Epoch ? Epoch : entry.ModificationTime);
        }
        // The first name of the hard links holds the file, the other links to it; the xattrs follow each name.
        var hard = entries.Single(e => e.Entry.Name == "srv/hard");
        AssertSameEntry(top[1].Entry with { Name = "srv/hard" }, top[1].Content, hard.Entry, hard.Content, Old);
        Assert.AreEqual((byte)'1', entries.Single(e => e.Entry.Name == "srv/zeta").Entry.Type);
        Assert.AreEqual("srv/hard", entries.Single(e => e.Entry.Name == "srv/zeta").Entry.LinkName);
        AssertXattrs(entries.Single(e => e.Entry.Name == "srv/zeta").Entry.Xattrs, (ContainerXattrs.Access, AccessAcl), ("user.x", [0, 0xFF, 1]));

        var config = JsonNode.Parse(output[outputs[0].Rewritten.ImageId[7..] + ".json"])!.AsObject();
        Assert.AreEqual("2024-01-01T00:00:00Z", config["created"]!.GetValue<string>());
        Assert.AreEqual("2024-01-01T00:00:00Z", config["history"]![1]!["created"]!.GetValue<string>(), "the rewritten layer's history entry");
        Assert.AreEqual("2020-01-01T00:00:00Z", config["history"]![0]!["created"]!.GetValue<string>(), "the lower layer's stays");
        Assert.IsFalse(config.ContainsKey("container") || config.ContainsKey("container_config") || config["config"]!.AsObject().ContainsKey("Hostname"),
            "nothing names the build container");
        Assert.AreEqual("/sbin/init", config["config"]!["Cmd"]![0]!.GetValue<string>());
    }

    [TestMethod]
    public async Task Layers_named_by_digest_as_podman_saves_them_are_found_without_the_v1_json()
    {
        var top = TopEntries();
        var (archive, _, _, topDiff) = SavedArchive(top, podmanNames: true);
        using var spool = new Spool();

        var rewritten = await TopLayerRewrite.RewriteSavedAsync(new MemoryStream(archive), topDiff, 2, Saved, null, spool.File, CancellationToken.None);

        CollectionAssert.AreEqual(new[] { DiffOf(LowerLayer())[7..] + ".tar" }, rewritten.LowerLayerPaths.ToArray());
        var wrongTop = "sha256:" + new string('0', 64);
        await Assert.ThrowsExactlyAsync<InvalidDataException>(() =>
            TopLayerRewrite.RewriteSavedAsync(new MemoryStream(archive), wrongTop, 2, Saved, null, spool.File, CancellationToken.None));
    }

    /// <summary>Why the layer is read with LayerTarReader: TarReader hands pax values back as strings, binary ones damaged.</summary>
    [TestMethod]
    public async Task TarReader_decodes_binary_pax_values_lossily_so_the_layer_is_read_with_LayerTarReader()
    {
        var layer = Layer([TopEntries()[2]]);

        var entry = (PaxTarEntry)new TarReader(new MemoryStream(layer)).GetNextEntry()!;
        var viaTarReader = Encoding.UTF8.GetBytes(entry.ExtendedAttributes["SCHILY.xattr.security.capability"]);
        var viaOurs = (await ReadLayerAsync(layer))[0].Entry.Xattrs["security.capability"];

        CollectionAssert.AreNotEqual(Capability, viaTarReader, "TarReader turns the non-UTF-8 bytes into U+FFFD");
        CollectionAssert.AreEqual(Capability, viaOurs);
    }

    private static void AssertSameEntry(PaxTarWriter.Entry expected, byte[] expectedContent, LayerTarReader.Entry actual, byte[] actualContent, DateTimeOffset mtime)
    {
        Assert.AreEqual(expected.Name, actual.Name);
        Assert.AreEqual((byte)expected.Type, actual.Type, expected.Name);
        Assert.AreEqual(expected.Mode, actual.Mode, expected.Name);
        Assert.AreEqual(expected.Uid, actual.Uid, expected.Name);
        Assert.AreEqual(expected.Gid, actual.Gid, expected.Name);
        Assert.AreEqual(expected.LinkName, actual.LinkName, expected.Name);
        Assert.AreEqual(mtime, actual.ModificationTime, expected.Name);
        CollectionAssert.AreEqual(expectedContent, actualContent, expected.Name);
    }

    private static void AssertXattrs(IReadOnlyDictionary<string, byte[]> actual, params (string Name, byte[] Value)[] expected)
    {
        CollectionAssert.AreEquivalent(expected.Select(e => e.Name).ToArray(), actual.Keys.ToArray());
        foreach (var (name, value) in expected)
        {
            CollectionAssert.AreEqual(value, actual[name], name);
        }
    }

    private static byte[] LowerLayer() => Layer(
    [
        (new PaxTarWriter.Entry("etc/", PaxTarWriter.EntryType.Directory, 0x1ED, 0, 0, Old), []),
        (new PaxTarWriter.Entry("etc/base", PaxTarWriter.EntryType.File, 0x1A4, 0, 0, Old) { Size = 4 }, "base"u8.ToArray()),
    ]);

    private static byte[] Layer(IEnumerable<(PaxTarWriter.Entry Entry, byte[] Content)> entries)
    {
        using var buffer = new MemoryStream();
        var writer = new PaxTarWriter(buffer);
        foreach (var (entry, content) in entries)
        {
            writer.WriteEntryAsync(entry, new MemoryStream(content), CancellationToken.None).GetAwaiter().GetResult();
        }
        writer.FinishAsync(CancellationToken.None).GetAwaiter().GetResult();
        return buffer.ToArray();
    }

    private static string DiffOf(byte[] layer) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(layer));

    /// <summary>
    /// As Docker 20.10 saves: sorted by name (config, the layer folders by v1 id, manifest.json, repositories), the top
    /// layer's v1 json holding the image's config and the lower one a placeholder; or as Podman names layers, by digest.
    /// </summary>
    private static (byte[] Archive, string LowerPath, string LowerDiff, string TopDiff) SavedArchive(List<(PaxTarWriter.Entry Entry, byte[] Content)> top,
        bool podmanNames = false)
    {
        var lower = LowerLayer();
        var topLayer = Layer(top);
        var (lowerDiff, topDiff) = (DiffOf(lower), DiffOf(topLayer));
        var config = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["architecture"] = "amd64",
            ["config"] = new JsonObject { ["Hostname"] = "0123456789ab", ["Cmd"] = new JsonArray("/sbin/init") },
            ["container"] = "0123456789abcdef",
            ["container_config"] = new JsonObject { ["Hostname"] = "0123456789ab" },
            ["created"] = "2030-01-01T00:00:00Z",
            ["history"] = new JsonArray(new JsonObject { ["created"] = "2020-01-01T00:00:00Z" }, new JsonObject { ["created"] = "2030-01-01T00:00:00Z" }),
            ["os"] = "linux",
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray(lowerDiff, topDiff) },
        }.ToJsonString());
        var configName = Convert.ToHexStringLower(SHA256.HashData(config)) + ".json";
        // v1 ids: any names; the top's folder sorts first, so the layer comes before manifest.json and after the config.
        var (lowerFolder, topFolder) = ("b" + new string('1', 63), "a" + new string('2', 63));
        var files = new List<(string Name, byte[] Data)> { (configName, config) };
        if (podmanNames)
        {
            files.Add((lowerDiff[7..] + ".tar", lower));
            files.Add((topDiff[7..] + ".tar", topLayer));
        }
        else
        {
            files.Add((topFolder + "/VERSION", "1.0"u8.ToArray()));
            files.Add((topFolder + "/json", Encoding.UTF8.GetBytes($$$"""{"id":"{{{topFolder}}}","parent":"{{{lowerFolder}}}","config":{"Cmd":["/sbin/init"]}}""")));
            files.Add((topFolder + "/layer.tar", topLayer));
            files.Add((lowerFolder + "/VERSION", "1.0"u8.ToArray()));
            files.Add((lowerFolder + "/json", Encoding.UTF8.GetBytes($$"""{"id":"{{lowerFolder}}","created":"1970-01-01T00:00:00Z"}""")));
            files.Add((lowerFolder + "/layer.tar", lower));
        }
        var lowerPath = podmanNames ? lowerDiff[7..] + ".tar" : lowerFolder + "/layer.tar";
        var layers = podmanNames ? new JsonArray(lowerPath, topDiff[7..] + ".tar") : new JsonArray(lowerPath, topFolder + "/layer.tar");
        files.Add(("manifest.json", Encoding.UTF8.GetBytes(new JsonArray(new JsonObject
        {
            ["Config"] = configName,
            ["RepoTags"] = new JsonArray("example/image:candidate"),
            ["Layers"] = layers,
        }).ToJsonString())));
        files.Add(("repositories", "{}"u8.ToArray()));
        using var buffer = new MemoryStream();
        using (var writer = new TarWriter(buffer, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (name, data) in files)
            {
                writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
            }
        }
        return (buffer.ToArray(), lowerPath, lowerDiff, topDiff);
    }

    private static async Task<Dictionary<string, byte[]>> LoadArchiveAsync(TopLayerRewrite.Rewritten rewritten)
    {
        using var load = new MemoryStream();
        await TopLayerRewrite.WriteLoadArchiveAsync(rewritten, "example/image:candidate", load, CancellationToken.None);
        return await ReadArchiveAsync(load.ToArray());
    }

    private static async Task<Dictionary<string, byte[]>> ReadArchiveAsync(byte[] archive)
    {
        var files = new Dictionary<string, byte[]>();
        var reader = new LayerTarReader(new MemoryStream(archive));
        while (await reader.NextAsync(CancellationToken.None) is { } entry)
        {
            files[entry.Name] = await ContentAsync(reader);
        }
        return files;
    }

    private static async Task<List<(LayerTarReader.Entry Entry, byte[] Content)>> ReadLayerAsync(byte[] layer)
    {
        var entries = new List<(LayerTarReader.Entry, byte[])>();
        var reader = new LayerTarReader(new MemoryStream(layer));
        while (await reader.NextAsync(CancellationToken.None) is { } entry)
        {
            entries.Add((entry, await ContentAsync(reader)));
        }
        return entries;
    }

    private static async Task<byte[]> ContentAsync(LayerTarReader reader)
    {
        using var content = new MemoryStream();
        await reader.Content.CopyToAsync(content);
        return content.ToArray();
    }

    /// <summary>A spool file path in a temporary folder, removed with what is in it.</summary>
    private sealed class Spool : IDisposable
    {
        private readonly string _directory = Directory.CreateTempSubdirectory("top-layer-test-").FullName;

        public string File => Path.Combine(_directory, "layer.tar");

        public void Dispose() => Directory.Delete(_directory, recursive: true);
    }
}
