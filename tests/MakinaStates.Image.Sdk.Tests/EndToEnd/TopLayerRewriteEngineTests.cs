using System.Diagnostics;
using System.Formats.Tar;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// `docker commit` drops ACLs and user xattrs; the top layer written again carries them, and the engine applies them
/// when it loads it: a container of the image has them without any restore at boot. A local engine's layer is read
/// from the container's upper dir (the config from a twin's commit); a remote one's from `docker save`, with
/// save-acls.sh's lists. Either way the image is the one docker commit makes, but for the xattr records.
/// </summary>
[TestClass]
public sealed class TopLayerRewriteEngineTests
{
    public TestContext TestContext { get; set; } = null!;

    private const string Setup = """
        set -e
        mkdir -p /srv/acl-dir "/srv/sp ace"
        echo content > /srv/acl-file
        setfacl -m u:4242:rw,g:4243:r /srv/acl-file
        setfacl -m g:4243:rwx -d -m g:4243:rx,u:4242:rwx /srv/acl-dir
        setfacl -m u:4242:rx "/srv/sp ace"
        setfattr -n user.note -v hello /srv/acl-file
        # A folder of the base layer: the ACL change copies it up into the committed layer.
        setfacl -d -m u:4242:rx /opt
        # What else a layer holds: a deletion (whiteout), a folder made again (opaque), links, a fifo.
        rm /etc/issue.net
        rm -rf /var/lib/apt && mkdir -p /var/lib/apt/again
        ln /srv/acl-file /srv/hard-link
        ln -s acl-file /srv/sym-link
        mkfifo /srv/fifo
        """;

    private const string Show = "getfacl -n -p /srv/acl-file /srv/acl-dir '/srv/sp ace' /opt; getfattr -n user.note --only-values /srv/acl-file";

    [TestMethod]
    [DataRow(true, DisplayName = "local engine: from the container's upper dir")]
    [DataRow(false, DisplayName = "remote engine: from docker save")]
    public async Task A_committed_layer_written_again_carries_the_containers_acls_and_user_xattrs(bool local)
    {
        using var docker = await TestDocker.RequireEngineAsync();
        using var connected = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        var engine = local ? connected : connected.AsRemote();
        var id = Guid.NewGuid().ToString("N")[..12];
        var pin = $"makinastates/test-top-layer-base:{id}";
        var reference = $"makinastates/test-top-layer:{id}";
        var spool = Directory.CreateTempSubdirectory("top-layer-spool-").FullName;
        string? container = null, committed = null, rewritten = null;
        try
        {
            await PinDebianBaseAsync(docker, pin);
            var saveAcls = await File.ReadAllTextAsync(Path.Combine(Repository.Root, "stage-scripts", "save-acls.sh"));
            container = (await docker.Containers.CreateContainerAsync(new CreateContainerParameters
            {
                Image = pin,
                Entrypoint = ["/bin/bash", "-c"],
                Cmd = [Setup + "\n" + saveAcls],
            })).ID;
            await docker.Containers.StartContainerAsync(container, new ContainerStartParameters());
            var exit = await docker.Containers.WaitContainerAsync(container);
            Assert.AreEqual(0L, exit.StatusCode, await LogsAsync(docker, container));
            // The engine's own commit, for comparison, with the changes a stage gives.
            CommitContainerChangesParameters Commit(string tag) => new()
            {
                ContainerID = container, RepositoryName = reference.Split(':')[0], Tag = tag,
                Cmd = ["/sbin/init"], StopSignal = "SIGRTMIN+3", Env = ["container=docker", "A=1"], ExposedPorts = new Dictionary<string, EmptyStruct> { ["80/tcp"] = default },
                Labels = new Dictionary<string, string> { ["io.makinastates.test"] = "yes" },
            };
            committed = (await engine.CommitAsync(Commit($"{id}-docker"), CancellationToken.None)).ID;
            var lost = await TestDocker.RunInImageAsync(docker, committed, Show);
            Assert.IsFalse(lost.Contains("user:4242", StringComparison.Ordinal), $"docker commit keeps no ACL (the reason for this code):\n{lost}");
            var dockers = await docker.Images.InspectImageAsync(committed);
            var asCommitted = await TopLayerAsync(docker, committed, dockers.RootFS!.Layers![^1]);
            var pinId = (await docker.Images.InspectImageAsync(pin)).ID;
            var dangling = (await docker.Images.ListImagesAsync(new ImagesListParameters { Filters = new Dictionary<string, IDictionary<string, bool>> { ["dangling"] = new Dictionary<string, bool> { ["true"] = true } } })).Count;

            // The container is stopped: its upper dir, or its lists through the archive API, are read all the same.
            var log = new List<string>();
            var clock = Stopwatch.StartNew();
            rewritten = await TopLayerRewrite.CommitAsync(engine, Commit(id), null, spool, log.Add, CancellationToken.None);
            TestContext.WriteLine($"rewrite: {clock.ElapsedMilliseconds} ms; {string.Join(" | ", log)}");
            StringAssert.Contains(log.Single(), local ? "from the container's upper dir" : "from the saved image");

            var image = await docker.Images.InspectImageAsync(reference);
            Assert.AreEqual(rewritten, image.ID);
            Assert.AreEqual(0, Directory.GetFileSystemEntries(spool).Length, "the spool file is removed");
            Assert.AreEqual(dangling, (await docker.Images.ListImagesAsync(new ImagesListParameters { Filters = new Dictionary<string, IDictionary<string, bool>> { ["dangling"] = new Dictionary<string, bool> { ["true"] = true } } })).Count,
                "the image the engine committed is gone");
            Assert.AreEqual(0, (await docker.Containers.ListContainersAsync(new ContainersListParameters { All = true })).Count(c => c.ID != container && c.ImageID == pinId),
                "no twin container is left");
            // The config is the one docker commit makes of the same container and changes.
            foreach (var (name, ours, theirs) in new (string, object?, object?)[]
            {
                ("Cmd", string.Join(" ", image.Config!.Cmd ?? []), string.Join(" ", dockers.Config!.Cmd ?? [])),
                ("Entrypoint", string.Join(" ", image.Config.Entrypoint ?? []), string.Join(" ", dockers.Config.Entrypoint ?? [])),
                ("Env", string.Join(" ", image.Config.Env ?? []), string.Join(" ", dockers.Config.Env ?? [])),
                ("Labels", string.Join(" ", image.Config.Labels ?? new Dictionary<string, string>()), string.Join(" ", dockers.Config.Labels ?? new Dictionary<string, string>())),
                ("ExposedPorts", string.Join(" ", image.Config.ExposedPorts?.Keys ?? []), string.Join(" ", dockers.Config.ExposedPorts?.Keys ?? [])),
                ("StopSignal", image.Config.StopSignal, dockers.Config.StopSignal),
                ("WorkingDir", image.Config.WorkingDir, dockers.Config.WorkingDir),
                ("User", image.Config.User, dockers.Config.User),
                ("Architecture", image.Architecture, dockers.Architecture),
            })
            {
                Assert.AreEqual(theirs, ours, name);
            }
            Assert.AreEqual(dockers.RootFS.Layers.Count, image.RootFS!.Layers!.Count);
            var shown = await TestDocker.RunInImageAsync(docker, reference, Show);
            foreach (var line in new[]
            {
                "# file: /srv/acl-file\n# owner: 0\n# group: 0\nuser::rw-\nuser:4242:rw-\ngroup::r--\ngroup:4243:r--\nmask::rw-\nother::r--\n",
                "# file: /srv/acl-dir\n# owner: 0\n# group: 0\nuser::rwx\ngroup::r-x\ngroup:4243:rwx\nmask::rwx\nother::r-x\ndefault:user::rwx\ndefault:user:4242:rwx\ndefault:group::r-x\ndefault:group:4243:r-x\ndefault:mask::rwx\ndefault:other::r-x\n",
                "# file: /srv/sp ace\n# owner: 0\n# group: 0\nuser::rwx\nuser:4242:r-x\n",
                "# file: /opt\n# owner: 0\n# group: 0\nuser::rwx\ngroup::r-x\nother::r-x\ndefault:user::rwx\ndefault:user:4242:r-x\n",
                "hello",
            })
            {
                StringAssert.Contains(shown, line);
            }

            var layer = await TopLayerAsync(docker, reference, image.RootFS!.Layers![^1]);
            CollectionAssert.IsSubsetOf(new[] { ContainerXattrs.Access, "user.note" }, layer["srv/acl-file"].Xattrs.ToArray());
            CollectionAssert.AreEquivalent(new[] { ContainerXattrs.Access, ContainerXattrs.Default }, layer["srv/acl-dir"].Xattrs.ToArray());
            CollectionAssert.AreEquivalent(new[] { ContainerXattrs.Default }, layer["opt"].Xattrs.ToArray());
            // Nothing else changed: each entry as docker commit wrote it (whiteouts, the opaque folder, links, the fifo,
            // owners, modes, sizes, content, times), with only xattr records added.
            CollectionAssert.AreEquivalent(asCommitted.Keys.ToArray(), layer.Keys.ToArray(), "the same entries");
            foreach (var (path, entry) in asCommitted)
            {
                Assert.AreEqual(entry with { Xattrs = [] }, layer[path] with { Xattrs = [] }, path);
                CollectionAssert.IsSubsetOf(entry.Xattrs.ToArray(), layer[path].Xattrs.ToArray(), path);
            }
            foreach (var expected in new[] { "etc/.wh.issue.net", "var/lib/apt/.wh..wh..opq", "srv/hard-link", "srv/sym-link", "srv/fifo" })
            {
                Assert.IsTrue(layer.ContainsKey(expected), $"{expected} is in the layer: {string.Join(", ", layer.Keys)}");
            }

            // With an epoch the result depends on the content only: rewriting it again gives the same image.
            var reproducible = await TopLayerRewrite.CommitAsync(engine, Commit(id), DateTimeOffset.FromUnixTimeSeconds(1704067200), spool, log.Add, CancellationToken.None);
            Assert.AreEqual(reproducible, await TopLayerRewrite.CommitAsync(engine, Commit(id), DateTimeOffset.FromUnixTimeSeconds(1704067200), spool, log.Add, CancellationToken.None));
            Assert.AreEqual("2024-01-01T00:00:00Z", (await docker.Images.InspectImageAsync(reference)).Created!.Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"));
            StringAssert.Contains(await TestDocker.RunInImageAsync(docker, reference, Show), "user:4242:rw-");
            // The first image, replaced under the tag by the later ones, is the test's to remove (a build's prune does it).
            await TestDocker.RemoveImageAsync(docker, rewritten);
            rewritten = reproducible;
        }
        finally
        {
            if (container is not null)
            {
                await TestDocker.RemoveContainerAsync(docker, container);
            }
            await TestDocker.RemoveImageAsync(docker, reference);
            foreach (var left in new[] { committed, rewritten }.OfType<string>())
            {
                await TestDocker.RemoveImageAsync(docker, left);
            }
            // Only the test's own tag: the base import stays.
            await engine.UntagAsync(pin);
            Directory.Delete(spool, recursive: true);
        }
    }

    /// <summary>
    /// A Debian base import the SDK's builds made (it has acl and attr), under a tag of the test's own so that another
    /// test removing its tag meanwhile leaves it.
    /// </summary>
    private static async Task PinDebianBaseAsync(DockerClient docker, string pin)
    {
        var images = await docker.Images.ListImagesAsync(new ImagesListParameters());
        var source = images.SelectMany(i => i.RepoTags ?? []).FirstOrDefault(t => t.StartsWith("makinastates/base-debian-bookworm:", StringComparison.Ordinal))
            ?? images.SelectMany(i => i.RepoTags ?? []).FirstOrDefault(t => t.StartsWith("makinastates/", StringComparison.Ordinal) && t.EndsWith("-stage1:latest", StringComparison.Ordinal));
        if (source is null)
        {
            TestDocker.MissingPrerequisite("No Debian base import (makinastates/base-debian-bookworm:*) on the engine: build one with 'bash .ci/setup && dotnet build samples/hello-systemd'.");
        }
        var (repository, tag) = (pin.Split(':')[0], pin.Split(':')[1]);
        try
        {
            await docker.Images.TagImageAsync(source, new ImageTagParameters { RepositoryName = repository, Tag = tag });
        }
        catch (DockerImageNotFoundException)
        {
            TestDocker.MissingPrerequisite($"{source} was removed while the test pinned it; run the test again.");
        }
    }

    /// <summary>An entry of a layer: what a rewrite keeps, and the xattr names it carries.</summary>
    private sealed record Entry(byte Type, int Mode, long Uid, long Gid, long Size, long MTime, string? Link, string ContentHash)
    {
        public IReadOnlyCollection<string> Xattrs { get; init; } = [];

        public bool Equals(Entry? other) => other is not null && (Type, Mode, Uid, Gid, Size, MTime, Link, ContentHash) ==
            (other.Type, other.Mode, other.Uid, other.Gid, other.Size, other.MTime, other.Link, other.ContentHash);

        public override int GetHashCode() => HashCode.Combine(Type, Mode, Uid, Gid, Size, MTime, Link, ContentHash);
    }

    /// <summary>Each entry of the image's top layer, read from `docker save`.</summary>
    private static async Task<Dictionary<string, Entry>> TopLayerAsync(DockerClient docker, string reference, string topDiffId)
    {
        await using var saved = new BufferedStream(await docker.Images.SaveImageAsync(reference, CancellationToken.None), 1 << 20);
        using var archive = new TarReader(saved);
        while (await archive.GetNextEntryAsync() is { } entry)
        {
            if (!entry.Name.EndsWith("layer.tar", StringComparison.Ordinal) || entry.DataStream is null)
            {
                continue;
            }
            var hashed = new Sha256Stream(entry.DataStream);
            var layer = new LayerTarReader(hashed);
            var records = new Dictionary<string, Entry>(StringComparer.Ordinal);
            while (await layer.NextAsync(CancellationToken.None) is { } file)
            {
                using var content = new MemoryStream();
                await layer.Content.CopyToAsync(content);
                var type = file.IsFile ? (byte)'0' : file.Type;
                records[file.Path] = new Entry(type, file.Mode & 0xFFF, file.Uid, file.Gid, file.Size, file.ModificationTime.ToUnixTimeSeconds(),
                    file.LinkName is null ? null : LayerTarReader.Normalize(file.LinkName), Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(content.ToArray())))
                {
                    Xattrs = [.. file.Xattrs.Keys],
                };
            }
            await layer.DrainAsync(CancellationToken.None);
            if (hashed.Digest() == topDiffId)
            {
                return records;
            }
        }
        Assert.Fail($"docker save of {reference} holds no layer {topDiffId}");
        return [];
    }

    private static async Task<string> LogsAsync(DockerClient docker, string container)
    {
        using var logs = await docker.Containers.GetContainerLogsAsync(container, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true }, CancellationToken.None);
        var (stdout, stderr) = await logs.ReadOutputToEndAsync(CancellationToken.None);
        return stdout + stderr;
    }
}
