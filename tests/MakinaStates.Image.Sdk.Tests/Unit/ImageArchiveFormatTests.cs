using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using MakinaStates.Image.Sdk.Archive;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// The archive writer on `docker save`-shaped streams made here (layers in the order of their v1 ids, not of the image,
/// manifest.json last), no engine: the OCI layout and the docker archive it writes, byte for byte the same each time,
/// read back by the BCL's tar reader, GNU tar and <see cref="ImageArchiveContents"/>; a failure leaves nothing.
/// </summary>
[TestClass]
public sealed class ImageArchiveFormatTests
{
    private static readonly ImagePlatform Amd64 = ImagePlatform.Parse("linux/amd64", "MsPlatform");
    private static readonly ImagePlatform Arm64 = ImagePlatform.Parse("linux/arm64", "MsPlatform");
    private static readonly byte[] Base = SyntheticImageSave.Layer(SyntheticImageSave.Folder("etc/"), SyntheticImageSave.File("etc/os-release", "ID=debian\n"));
    private static readonly ArchiveExtraFile Sbom = new("sbom/amd64.cdx.json", """{"bomFormat":"CycloneDX"}"""u8.ToArray());

    private string _directory = "";

    [TestInitialize]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("archive-").FullName;

    [TestCleanup]
    public void RemoveDirectory() => Directory.Delete(_directory, recursive: true);

    private static SyntheticImageSave Image(ImagePlatform platform, string app) =>
        SyntheticImageSave.Create(platform, [Base, SyntheticImageSave.Layer(SyntheticImageSave.Folder("srv/"), SyntheticImageSave.File("srv/app", app))]);

    private ArchiveRequest Request(ArchiveFormat format, IReadOnlyList<SyntheticImageSave> images, string name = "image.tar", params string[] tags) =>
        new(Path.Combine(_directory, name), format, "makinastates/hello", tags.Length == 0 ? ["candidate", "1.2.3", "latest"] : tags,
            [.. images.Select(i => i.Image)], [Sbom]);

    private static Task<WrittenArchive> WriteAsync(ArchiveRequest request, IReadOnlyList<SyntheticImageSave> images, CancellationToken cancellationToken = default) =>
        ImageArchiveWriter.WriteAsync(request, (image, _) => Task.FromResult(images.Single(i => i.ImageId == image.ImageId).OpenStream()), cancellationToken);

    /// <summary>Every entry of the archive, read with the BCL: name → content (null for a folder).</summary>
    private static List<(string Name, byte[]? Content)> Entries(string path)
    {
        using var reader = new TarReader(File.OpenRead(path));
        var entries = new List<(string, byte[]?)>();
        while (reader.GetNextEntry() is { } entry)
        {
            Assert.AreEqual(0, entry.Uid, entry.Name);
            Assert.AreEqual(0, entry.Gid, entry.Name);
            Assert.AreEqual(DateTimeOffset.UnixEpoch, entry.ModificationTime, entry.Name);
            using var content = new MemoryStream();
            entry.DataStream?.CopyTo(content);
            entries.Add((entry.Name, entry.EntryType == TarEntryType.Directory ? null : content.ToArray()));
        }
        return entries;
    }

    private static string Digest(byte[] bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    private static byte[] Blob(List<(string Name, byte[]? Content)> entries, string digest) =>
        entries.Single(e => e.Name == "blobs/sha256/" + digest["sha256:".Length..]).Content!;

    [TestMethod]
    public async Task A_save_becomes_an_oci_layout_of_blobs_named_by_their_digest_and_an_index_naming_every_tag()
    {
        var image = Image(Amd64, "v1\n");
        var request = Request(ArchiveFormat.Oci, [image]);
        var written = await WriteAsync(request, [image]);

        var entries = Entries(request.Path);
        Assert.AreEqual("oci-layout", entries[0].Name);
        Assert.AreEqual("""{"imageLayoutVersion":"1.0.0"}""", System.Text.Encoding.UTF8.GetString(entries[0].Content!));
        Assert.AreEqual("index.json", entries[^1].Name, "index.json last");
        foreach (var (name, content) in entries.Where(e => e.Name.StartsWith("blobs/sha256/", StringComparison.Ordinal) && e.Content is not null))
        {
            Assert.AreEqual("blobs/sha256/" + Convert.ToHexStringLower(SHA256.HashData(content!)), name, "each blob is named by its sha256 (the patched headers)");
        }
        CollectionAssert.AreEqual(new[] { "blobs/", "blobs/sha256/" }, entries.Where(e => e.Content is null && e.Name.StartsWith("blobs", StringComparison.Ordinal)).Select(e => e.Name).ToArray());

        var index = JsonNode.Parse(entries[^1].Content!)!;
        Assert.AreEqual(2, (int)index["schemaVersion"]!);
        var named = index["manifests"]!.AsArray();
        CollectionAssert.AreEqual(new[] { "candidate", "1.2.3", "latest" }, named.Select(d => (string)d!["annotations"]!["org.opencontainers.image.ref.name"]!).ToArray());
        CollectionAssert.AreEqual(new[] { "makinastates/hello:candidate", "makinastates/hello:1.2.3", "makinastates/hello:latest" },
            named.Select(d => (string)d!["annotations"]!["io.containerd.image.name"]!).ToArray());
        Assert.IsTrue(named.All(d => (string)d!["digest"]! == written.Digest), "every tag names the one manifest");
        Assert.AreEqual("application/vnd.oci.image.manifest.v1+json", (string)named[0]!["mediaType"]!);
        Assert.AreEqual("amd64", (string)named[0]!["platform"]!["architecture"]!);
        Assert.AreEqual("linux", (string)named[0]!["platform"]!["os"]!);

        var manifestBytes = Blob(entries, written.Digest);
        Assert.AreEqual((long)named[0]!["size"]!, manifestBytes.Length);
        var manifest = JsonNode.Parse(manifestBytes)!;
        Assert.AreEqual(2, (int)manifest["schemaVersion"]!);
        Assert.AreEqual("application/vnd.oci.image.manifest.v1+json", (string)manifest["mediaType"]!);
        Assert.AreEqual(image.ImageId, (string)manifest["config"]!["digest"]!, "the config's digest stays the image id");
        Assert.AreEqual("application/vnd.oci.image.config.v1+json", (string)manifest["config"]!["mediaType"]!);
        CollectionAssert.AreEqual(image.Config, Blob(entries, image.ImageId), "the config byte for byte");
        var layers = manifest["layers"]!.AsArray();
        CollectionAssert.AreEqual(image.DiffIds.ToArray(), layers.Select(l => (string)l!["digest"]!).ToArray(), "the layers in the image's order, by diff id");
        Assert.IsTrue(layers.All(l => (string)l!["mediaType"]! == "application/vnd.oci.image.layer.v1.tar"));
        CollectionAssert.AreEqual(Base, Blob(entries, image.DiffIds[0]), "a layer is the saved layer tar as it was");

        Assert.AreEqual(Sbom.Content.Length, entries.Single(e => e.Name == Sbom.Name).Content!.Length, "the extra file at its name");
        CollectionAssert.AreEqual(Sbom.Content, Blob(entries, Sbom.Digest), "and as a blob");
        Assert.AreEqual(new WrittenArchive(request.Path, ArchiveFormat.Oci, Digest(manifestBytes)), written);

        // GNU tar reads the same entries (the headers' checksums after the patch, too).
        var listed = HostProcess.Run("tar", "-tf", request.Path).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        CollectionAssert.AreEqual(entries.Select(e => e.Name).ToArray(), listed);
        Assert.AreEqual(0, new FileInfo(request.Path).Length % 512);
    }

    [TestMethod]
    public async Task Two_platforms_give_a_nested_image_index_and_their_shared_layer_once()
    {
        var amd64 = Image(Amd64, "amd64\n");
        var arm64 = Image(Arm64, "arm64\n");
        var request = Request(ArchiveFormat.Oci, [amd64, arm64], tags: ["candidate"]);
        var written = await WriteAsync(request, [amd64, arm64]);

        var entries = Entries(request.Path);
        var index = JsonNode.Parse(entries.Single(e => e.Name == "index.json").Content!)!["manifests"]!.AsArray();
        Assert.AreEqual(1, index.Count, "one tag, one entry: skopeo's oci-archive:<file> without a tag finds it");
        Assert.AreEqual("application/vnd.oci.image.index.v1+json", (string)index[0]!["mediaType"]!);
        Assert.IsNull(index[0]!["platform"], "the index is for several platforms");
        Assert.AreEqual(written.Digest, (string)index[0]!["digest"]!);
        var nested = JsonNode.Parse(Blob(entries, written.Digest))!["manifests"]!.AsArray();
        CollectionAssert.AreEqual(new[] { "amd64", "arm64" }, nested.Select(m => (string)m!["platform"]!["architecture"]!).ToArray());
        for (var i = 0; i < 2; i++)
        {
            var manifest = JsonNode.Parse(Blob(entries, (string)nested[i]!["digest"]!))!;
            Assert.AreEqual(new[] { amd64, arm64 }[i].ImageId, (string)manifest["config"]!["digest"]!);
        }
        Assert.AreEqual(1, entries.Count(e => e.Name == "blobs/sha256/" + amd64.DiffIds[0][7..]), "the shared base layer is written once");
        Assert.AreEqual(amd64.DiffIds[0], arm64.DiffIds[0]);
        var blobs = entries.Count(e => e.Content is not null && e.Name.StartsWith("blobs/", StringComparison.Ordinal));
        Assert.AreEqual(3 + 2 * 2 + 1 + 1, blobs, "3 layers, 2 configs and manifests, the index, the SBOM");
        CollectionAssert.AreEqual(entries.Select(e => e.Name).ToArray(), HostProcess.Run("tar", "-tf", request.Path).Split('\n', StringSplitOptions.RemoveEmptyEntries),
            "the truncated copy of the shared layer left a tar GNU tar reads");
    }

    [TestMethod]
    public async Task The_same_images_and_inputs_give_the_same_bytes()
    {
        var amd64 = Image(Amd64, "amd64\n");
        var arm64 = Image(Arm64, "arm64\n");
        foreach (var format in new[] { ArchiveFormat.Oci, ArchiveFormat.Docker })
        {
            var images = format == ArchiveFormat.Oci ? new[] { amd64, arm64 } : [amd64];
            var first = await WriteAsync(Request(format, images, "first.tar"), images);
            var second = await WriteAsync(Request(format, images, "second.tar"), images);
            Assert.AreEqual(first.Digest, second.Digest);
            CollectionAssert.AreEqual(File.ReadAllBytes(first.Path), File.ReadAllBytes(second.Path), $"{format}: byte for byte");
        }
    }

    [TestMethod]
    public async Task The_reader_gives_back_what_was_written_and_null_for_other_files()
    {
        var amd64 = Image(Amd64, "amd64\n");
        var arm64 = Image(Arm64, "arm64\n");
        foreach (var (format, images) in new[] { (ArchiveFormat.Oci, new[] { amd64 }), (ArchiveFormat.Oci, [amd64, arm64]), (ArchiveFormat.Docker, [amd64]) })
        {
            var request = Request(format, images, $"{format}-{images.Length}.tar");
            var written = await WriteAsync(request, images);
            var contents = await ImageArchiveContents.ReadAsync(request.Path, CancellationToken.None);
            Assert.IsNotNull(contents, $"{format}, {images.Length} platforms");
            Assert.AreEqual(format, contents.Format);
            Assert.AreEqual(written.Digest, contents.Digest);
            CollectionAssert.AreEqual(request.References.ToArray(), contents.References.ToArray());
            CollectionAssert.AreEqual(request.Images.ToArray(), contents.Images.ToArray(), "image ids and platforms");
            CollectionAssert.AreEqual(new[] { new ArchivedFile(Sbom.Name, Sbom.Digest) }, contents.ExtraFiles.ToArray());
            Assert.IsTrue(contents.Holds(request));
            Assert.IsFalse(contents.Holds(request with { Tags = ["candidate", "1.2.4"] }), "another tag");
            Assert.IsFalse(contents.Holds(request with { ExtraFiles = [Sbom with { Content = [.. Sbom.Content, (byte)'\n'] }] }), "another SBOM");
            Assert.IsFalse(contents.Holds(request with { Format = format == ArchiveFormat.Oci ? ArchiveFormat.Docker : ArchiveFormat.Oci }), "another format");
            Assert.IsFalse(contents.Holds(request with { Images = [Image(Amd64, "other\n").Image] }), "another image");
        }

        var other = Path.Combine(_directory, "other.tar");
        using (var writer = new TarWriter(File.Create(other)))
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "index.json") { DataStream = new MemoryStream("{}"u8.ToArray()) });
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "notes.txt") { DataStream = new MemoryStream("hello"u8.ToArray()) });
        }
        Assert.IsNull(await ImageArchiveContents.ReadAsync(other, CancellationToken.None), "a tar of other files");
        await File.WriteAllBytesAsync(other, RandomNumberGenerator.GetBytes(10000));
        Assert.IsNull(await ImageArchiveContents.ReadAsync(other, CancellationToken.None), "random bytes");
        Assert.IsNull(await ImageArchiveContents.ReadAsync(Path.Combine(_directory, "missing.tar"), CancellationToken.None), "no file");

        // A layout missing a layer blob is not the archive (the layers are not read, but they are there).
        var request2 = Request(ArchiveFormat.Oci, [amd64], "cut.tar");
        await WriteAsync(request2, [amd64]);
        var cut = Path.Combine(_directory, "cut-copy.tar");
        using (var reader = new TarReader(File.OpenRead(request2.Path)))
        using (var writer = new TarWriter(File.Create(cut), TarEntryFormat.Ustar))
        {
            while (reader.GetNextEntry() is { } entry)
            {
                if (entry.Name != "blobs/sha256/" + amd64.DiffIds[1][7..])
                {
                    writer.WriteEntry(entry);
                }
            }
        }
        Assert.IsNotNull(await ImageArchiveContents.ReadAsync(request2.Path, CancellationToken.None));
        Assert.IsNull(await ImageArchiveContents.ReadAsync(cut, CancellationToken.None), "a layer blob missing");
    }

    [TestMethod]
    public async Task The_docker_format_is_the_save_naming_every_tag()
    {
        var image = SyntheticImageSave.Create(Amd64, [Base], repoTag: "makinastates/saved:as-it-was");
        var request = Request(ArchiveFormat.Docker, [image]);
        var written = await WriteAsync(request, [image]);
        Assert.AreEqual(image.ImageId, written.Digest, "the docker format's digest is the image id");

        var entries = Entries(request.Path);
        var saved = new List<string>();
        using (var reader = new TarReader(new MemoryStream(image.Save)))
        {
            while (reader.GetNextEntry() is { } entry)
            {
                saved.Add(entry.Name);
            }
        }
        CollectionAssert.AreEqual(saved.Append("sbom/").Append(Sbom.Name).ToArray(), entries.Select(e => e.Name).ToArray(), "the save's entries in its order, then the extra file");
        var manifest = JsonNode.Parse(entries.Single(e => e.Name == "manifest.json").Content!)!.AsArray();
        CollectionAssert.AreEqual(request.References.ToArray(), manifest[0]!["RepoTags"]!.AsArray().Select(t => (string)t!).ToArray());
        var repositories = JsonNode.Parse(entries.Single(e => e.Name == "repositories").Content!)!.AsObject();
        CollectionAssert.AreEqual(new[] { "makinastates/hello" }, repositories.Select(r => r.Key).ToArray());
        CollectionAssert.AreEqual(new[] { "candidate", "1.2.3", "latest" }, repositories["makinastates/hello"]!.AsObject().Select(t => t.Key).ToArray());
        CollectionAssert.AreEqual(Base, entries.Single(e => e.Name.EndsWith("/layer.tar", StringComparison.Ordinal)).Content);
    }

    [TestMethod]
    public async Task A_layer_that_is_not_its_diff_id_fails_and_leaves_no_file()
    {
        var good = Image(Amd64, "v1\n");
        var wrong = SyntheticImageSave.Create(Amd64, [Base, SyntheticImageSave.Layer(SyntheticImageSave.File("srv/app", "v1\n"))],
            diffIds: [good.DiffIds[0], "sha256:" + new string('a', 64)]);
        var request = Request(ArchiveFormat.Oci, [wrong]);
        var failure = await Assert.ThrowsExactlyAsync<InvalidDataException>(() => WriteAsync(request, [wrong]));
        StringAssert.Contains(failure.Message, "rootfs.diff_ids[1] is sha256:aaaa");
        StringAssert.Contains(failure.Message, wrong.ImageId);
        CollectionAssert.AreEqual(Array.Empty<string>(), Directory.GetFiles(_directory), "no archive, no temporary");
    }

    [TestMethod]
    public async Task A_failed_or_cancelled_write_leaves_the_archive_there_as_it_was()
    {
        var image = Image(Amd64, "v1\n");
        var request = Request(ArchiveFormat.Oci, [image]);
        await WriteAsync(request, [image]);
        var before = File.ReadAllBytes(request.Path);

        // The engine's stream breaks in the middle of a layer.
        var other = Image(Amd64, "v2\n");
        var failure = await Assert.ThrowsExactlyAsync<IOException>(() => ImageArchiveWriter.WriteAsync(request with { Images = [other.Image] },
            (_, _) => Task.FromResult<Stream>(new BreakingStream(other.Save, other.Save.Length - 3000)), CancellationToken.None));
        StringAssert.Contains(failure.Message, "connection reset");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(request.Path), "the archive there is untouched");
        CollectionAssert.AreEqual(new[] { request.Path }, Directory.GetFiles(_directory), "no temporary left");

        // Cancelled while the engine streams.
        using var cancel = new CancellationTokenSource();
        await Assert.ThrowsAsync<OperationCanceledException>(() => ImageArchiveWriter.WriteAsync(request with { Images = [other.Image] },
            (_, _) => Task.FromResult<Stream>(new BreakingStream(other.Save, other.Save.Length - 3000, cancel)), cancel.Token));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(request.Path), "the archive there is untouched");
        CollectionAssert.AreEqual(new[] { request.Path }, Directory.GetFiles(_directory), "no temporary left");
    }

    [TestMethod]
    public async Task A_request_no_archive_can_be_written_for_fails_before_the_engine_is_asked()
    {
        var amd64 = Image(Amd64, "amd64\n");
        var arm64 = Image(Arm64, "arm64\n");
        var asked = 0;
        Task<Stream> Save(ArchivedImage image, CancellationToken _)
        {
            asked++;
            return Task.FromResult(amd64.OpenStream());
        }
        var twoPlatforms = await Assert.ThrowsExactlyAsync<ArgumentException>(() => ImageArchiveWriter.WriteAsync(Request(ArchiveFormat.Docker, [amd64, arm64]), Save, CancellationToken.None));
        StringAssert.Contains(twoPlatforms.Message, "linux/amd64, linux/arm64");
        await Assert.ThrowsExactlyAsync<ArgumentException>(() => ImageArchiveWriter.WriteAsync(Request(ArchiveFormat.Oci, [amd64, amd64]), Save, CancellationToken.None));
        await Assert.ThrowsExactlyAsync<ArgumentException>(() => ImageArchiveWriter.WriteAsync(Request(ArchiveFormat.Oci, [amd64]) with { Tags = [] }, Save, CancellationToken.None));
        foreach (var name in new[] { "index.json", "blobs/sha256/x", "../sbom.json", "/sbom.json", "a//b", new string('x', 300), amd64.ImageId[7..] + ".json" })
        {
            await Assert.ThrowsExactlyAsync<ArgumentException>(() => ImageArchiveWriter.WriteAsync(Request(ArchiveFormat.Oci, [amd64]) with
            {
                ExtraFiles = [new ArchiveExtraFile(name, [])],
            }, Save, CancellationToken.None), name);
        }
        // The platform said is the config's: an archive never says another.
        var said = await Assert.ThrowsExactlyAsync<InvalidDataException>(() => ImageArchiveWriter.WriteAsync(Request(ArchiveFormat.Oci, [amd64]) with
        {
            Images = [amd64.Image with { Platform = Arm64 }],
        }, Save, CancellationToken.None));
        StringAssert.Contains(said.Message, "is for linux/amd64, not linux/arm64");
        Assert.AreEqual(1, asked, "only the last request reached the engine");
        CollectionAssert.AreEqual(Array.Empty<string>(), Directory.GetFiles(_directory));
    }

    /// <summary>A stream of <paramref name="content"/> that fails (or cancels) after <paramref name="breakAt"/> bytes.</summary>
    private sealed class BreakingStream(byte[] content, int breakAt, CancellationTokenSource? cancel = null) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_position >= breakAt)
            {
                if (cancel is null)
                {
                    throw new IOException("connection reset by the engine");
                }
                cancel.Cancel();
                // What a disposed HTTP stream says: not an OperationCanceledException.
                throw new ObjectDisposedException("the engine's stream");
            }
            var read = Math.Min(count, Math.Min(breakAt, content.Length) - _position);
            Array.Copy(content, _position, buffer, offset, read);
            _position += read;
            return read;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
