using System.Text.Json.Nodes;
using Docker.DotNet;
using MakinaStates.Image.Sdk.Archive;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Archives of images on the engine, read by the clients users have, not by the SDK's own reader: skopeo (inspect,
/// copy to a registry), umoci (unpack: content, owner, ACL) and `docker load` on a second engine. The images are made
/// without any build: `docker load` of a save made here (<see cref="SyntheticImageSave"/>), two layers, the second with
/// a file whose POSIX ACL rides as a SCHILY.xattr.system.posix_acl_access pax record; the engine saves it back as it
/// keeps it.
/// </summary>
[TestClass]
public sealed class ImageArchiveClientTests
{
    private static readonly ImagePlatform Amd64 = ImagePlatform.Parse("linux/amd64", "MsPlatform");
    private static readonly ImagePlatform Arm64 = ImagePlatform.Parse("linux/arm64", "MsPlatform");
    private static readonly byte[] Acl = ContainerXattrs.ParseAcls("# file: /srv/acl-file\nuser::rw-\nuser:4242:r--\ngroup::r--\nmask::r--\nother::---\n")
        ["srv/acl-file"][ContainerXattrs.Access];
    private static readonly ArchiveExtraFile Sbom = new("sbom/amd64.cdx.json", """{"bomFormat":"CycloneDX","specVersion":"1.6"}"""u8.ToArray());

    private readonly string _repository = $"makinastates/test-archive-{Guid.NewGuid():N}";
    private readonly List<string> _images = [];
    private string _directory = "";
    private DockerClient? _docker;
    private DockerEngine? _engine;

    [TestInitialize]
    public async Task ConnectAsync()
    {
        _docker = await TestDocker.RequireEngineAsync();
        _engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        _directory = Directory.CreateTempSubdirectory("archive-e2e-").FullName;
        foreach (var tool in new[] { "skopeo", "umoci", "getfacl" })
        {
            if (!File.Exists($"/usr/bin/{tool}"))
            {
                TestDocker.MissingPrerequisite($"{tool} is not installed; bash .ci/setup installs it");
            }
        }
    }

    [TestCleanup]
    public async Task CleanupAsync()
    {
        foreach (var image in _images)
        {
            await TestDocker.RemoveImageAsync(_docker!, image);
        }
        _engine?.Dispose();
        _docker?.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>An image of two layers on the engine (the second holds the ACL file and <paramref name="app"/>), under a tag of the test's.</summary>
    private async Task<SyntheticImageSave> LoadAsync(ImagePlatform platform, string app)
    {
        var tag = $"{_repository}:source-{platform.Suffix}";
        var save = SyntheticImageSave.Create(platform,
        [
            SyntheticImageSave.Layer(SyntheticImageSave.Folder("etc/"), SyntheticImageSave.File("etc/os-release", "ID=synthetic\n")),
            SyntheticImageSave.Layer(SyntheticImageSave.Folder("srv/"),
                SyntheticImageSave.File("srv/acl-file", "secret\n", mode: 0x1A0, uid: 1234, gid: 5678,
                    xattrs: new Dictionary<string, byte[]> { [ContainerXattrs.Access] = Acl }),
                SyntheticImageSave.File("srv/app", app)),
        ], repoTag: tag);
        _images.Add(save.ImageId);
        var error = await ImageArchive.LoadAsync(_engine!, (output, ct) => output.WriteAsync(save.Save, ct).AsTask(), CancellationToken.None);
        Assert.IsNull(error, $"docker load of the synthetic image: {error}");
        Assert.AreEqual(save.ImageId, await TestDocker.ImageIdAsync(_docker!, tag), "the engine keeps the config as loaded");
        return save;
    }

    private ArchiveRequest Request(string name, ArchiveFormat format, IReadOnlyList<SyntheticImageSave> images, params string[] tags) =>
        new(Path.Combine(_directory, name), format, _repository, tags, [.. images.Select(i => i.Image)], [Sbom]);

    private static string Skopeo(params string[] arguments) => HostProcess.Run("skopeo", ["--insecure-policy", .. arguments]);

    [TestMethod]
    public async Task Skopeo_inspects_and_copies_the_oci_archive_and_umoci_unpacks_its_files_with_their_owner_and_acl()
    {
        var image = await LoadAsync(Amd64, "v1\n");
        var request = Request("hello.tar", ArchiveFormat.Oci, [image], "candidate");
        var written = await ImageArchiveWriter.WriteAsync(_engine!, request, CancellationToken.None);

        // Only candidate: index.json has one entry, which skopeo finds without a tag.
        var inspected = JsonNode.Parse(Skopeo("inspect", $"oci-archive:{request.Path}"))!;
        Assert.AreEqual(written.Digest, (string)inspected["Digest"]!);
        CollectionAssert.AreEqual(image.DiffIds.ToArray(), inspected["Layers"]!.AsArray().Select(l => (string)l!).ToArray());
        Assert.AreEqual("amd64", (string)inspected["Architecture"]!);
        var config = JsonNode.Parse(Skopeo("inspect", "--config", $"oci-archive:{request.Path}"))!;
        Assert.AreEqual("/bin/true", (string)config["config"]!["Cmd"]![0]!, "the engine's config");

        // Every tag names it.
        var tagged = Request("tagged.tar", ArchiveFormat.Oci, [image], "candidate", "1.2.3", "latest");
        var taggedWritten = await ImageArchiveWriter.WriteAsync(_engine!, tagged, CancellationToken.None);
        Assert.AreEqual(written.Digest, taggedWritten.Digest, "the same manifest under more names");
        foreach (var tag in new[] { "candidate", "1.2.3", "latest" })
        {
            Assert.AreEqual(written.Digest, (string)JsonNode.Parse(Skopeo("inspect", $"oci-archive:{tagged.Path}:{tag}"))!["Digest"]!, tag);
        }

        using (var registry = await LocalRegistry.StartAsync())
        {
            // As users copy it: skopeo compresses the layers for the registry, so the manifest is its own; the image is the same.
            Skopeo("copy", "--dest-tls-verify=false", $"oci-archive:{request.Path}:candidate", $"docker://{registry.Address}/archive/hello:1");
            var (status, _, body) = await registry.GetManifestAsync("archive/hello", "1");
            Assert.AreEqual(System.Net.HttpStatusCode.OK, status, registry.Log);
            var pushed = JsonNode.Parse(body)!;
            Assert.AreEqual(image.ImageId, (string)pushed["config"]!["digest"]!, "the registry has the image's config");
            Assert.AreEqual(2, pushed["layers"]!.AsArray().Count);
            // Digests preserved (layers as they are): the registry's manifest is the archive's, the digest the SDK reports.
            Skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", $"oci-archive:{request.Path}:candidate", $"docker://{registry.Address}/archive/hello:2");
            var (_, digest, _) = await registry.GetManifestAsync("archive/hello", "2");
            Assert.AreEqual(written.Digest, digest, "the registry holds the archive's manifest as it is");
        }

        // umoci reads a layout folder: the archive extracted.
        var layout = Path.Combine(_directory, "layout");
        var bundle = Path.Combine(_directory, "bundle");
        Directory.CreateDirectory(layout);
        HostProcess.Run("tar", "-xf", request.Path, "-C", layout);
        HostProcess.Run("umoci", "unpack", "--image", $"{layout}:candidate", bundle);
        var file = Path.Combine(bundle, "rootfs", "srv", "acl-file");
        Assert.AreEqual("secret\n", File.ReadAllText(file));
        Assert.AreEqual("v1\n", File.ReadAllText(Path.Combine(bundle, "rootfs", "srv", "app")), "the second layer is applied");
        Assert.AreEqual("1234:5678 640", HostProcess.Run("stat", "-c", "%u:%g %a", file).Trim());
        var acl = HostProcess.Run("getfacl", "-n", "--omit-header", file);
        StringAssert.Contains(acl, "user:4242:r--", $"the ACL the engine kept: {acl}");
        Assert.AreEqual("""{"bomFormat":"CycloneDX","specVersion":"1.6"}""", File.ReadAllText(Path.Combine(layout, "sbom", "amd64.cdx.json")));

        var contents = await ImageArchiveContents.ReadAsync(request.Path, CancellationToken.None);
        Assert.IsNotNull(contents);
        Assert.IsTrue(contents.Holds(request), "the up-to-date check finds what it would write");
        Assert.AreEqual(written.Digest, contents.Digest);
    }

    [TestMethod]
    public async Task A_two_platform_oci_archive_lists_both_platforms_and_copies_whole()
    {
        var amd64 = await LoadAsync(Amd64, "amd64\n");
        var arm64 = await LoadAsync(Arm64, "arm64\n");
        var request = Request("two.tar", ArchiveFormat.Oci, [amd64, arm64], "candidate", "1.2.3");
        var written = await ImageArchiveWriter.WriteAsync(_engine!, request, CancellationToken.None);

        var raw = JsonNode.Parse(Skopeo("inspect", "--raw", $"oci-archive:{request.Path}:candidate"))!;
        Assert.AreEqual("application/vnd.oci.image.index.v1+json", (string)raw["mediaType"]!);
        CollectionAssert.AreEqual(new[] { "linux/amd64", "linux/arm64" },
            raw["manifests"]!.AsArray().Select(m => $"{m!["platform"]!["os"]}/{m["platform"]!["architecture"]}").ToArray());
        var arm = JsonNode.Parse(Skopeo("inspect", "--override-arch", "arm64", $"oci-archive:{request.Path}:1.2.3"))!;
        Assert.AreEqual("arm64", (string)arm["Architecture"]!);
        CollectionAssert.AreEqual(arm64.DiffIds.ToArray(), arm["Layers"]!.AsArray().Select(l => (string)l!).ToArray());

        using (var registry = await LocalRegistry.StartAsync())
        {
            Skopeo("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", $"oci-archive:{request.Path}:candidate", $"docker://{registry.Address}/archive/multi:1");
            var index = JsonNode.Parse(Skopeo("inspect", "--raw", "--tls-verify=false", $"docker://{registry.Address}/archive/multi:1"))!;
            Assert.AreEqual(2, index["manifests"]!.AsArray().Count, registry.Log);
            Assert.AreEqual(written.Digest, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
                System.Text.Encoding.UTF8.GetBytes(Skopeo("inspect", "--raw", "--tls-verify=false", $"docker://{registry.Address}/archive/multi:1")))),
                "the registry holds the archive's index as it is");
        }

        var contents = await ImageArchiveContents.ReadAsync(request.Path, CancellationToken.None);
        Assert.IsNotNull(contents);
        Assert.IsTrue(contents.Holds(request));
        CollectionAssert.AreEqual(new[] { amd64.Image, arm64.Image }, contents.Images.ToArray());
    }

    [TestMethod]
    public async Task Docker_load_of_the_docker_archive_on_a_second_engine_gives_the_same_image_under_every_tag()
    {
        var image = await LoadAsync(Amd64, "v1\n");
        var request = Request("hello-docker.tar", ArchiveFormat.Docker, [image], "candidate", "1.2.3");
        var written = await ImageArchiveWriter.WriteAsync(_engine!, request, CancellationToken.None);
        Assert.AreEqual(image.ImageId, written.Digest);

        var second = await SharedCgroupV2Engine.GetAsync();
        using var secondEngine = await DockerEngine.ConnectAsync(second.Host, CancellationToken.None);
        using var secondClient = second.Connect();
        try
        {
            var error = await ImageArchive.LoadAsync(secondEngine, async (output, ct) =>
            {
                await using var archive = File.OpenRead(request.Path);
                await archive.CopyToAsync(output, ct);
            }, CancellationToken.None);
            Assert.IsNull(error, $"docker load on the second engine: {error}");
            foreach (var reference in request.References)
            {
                Assert.AreEqual(image.ImageId, await TestDocker.ImageIdAsync(secondClient, reference), reference);
            }
        }
        finally
        {
            foreach (var reference in request.References)
            {
                await TestDocker.RemoveImageAsync(secondClient, reference);
            }
        }

        var contents = await ImageArchiveContents.ReadAsync(request.Path, CancellationToken.None);
        Assert.IsNotNull(contents);
        Assert.IsTrue(contents.Holds(request));
        CollectionAssert.AreEqual(new[] { new ArchivedFile(Sbom.Name, Sbom.Digest) }, contents.ExtraFiles.ToArray());
    }

    [TestMethod]
    public async Task Podmans_save_gives_the_same_archives_as_dockers()
    {
        var image = await LoadAsync(Amd64, "v1\n");
        var fromDocker = await ImageArchiveWriter.WriteAsync(_engine!, Request("docker-engine.tar", ArchiveFormat.Oci, [image], "candidate"), CancellationToken.None);

        // Podman's compat API saves the same image another way: <digest>.tar layers, the v1 folders as symbolic links.
        var podman = await SharedPodmanService.GetAsync();
        using var podmanEngine = await DockerEngine.ConnectAsync(podman.Host, CancellationToken.None);
        using var podmanClient = podman.Connect();
        try
        {
            var error = await ImageArchive.LoadAsync(podmanEngine, (output, ct) => output.WriteAsync(image.Save, ct).AsTask(), CancellationToken.None);
            Assert.IsNull(error, $"load into Podman: {error}");
            Assert.AreEqual(image.ImageId, await TestDocker.ImageIdAsync(podmanClient, image.ImageId), "Podman keeps the config as loaded");
            var request = Request("podman.tar", ArchiveFormat.Oci, [image], "candidate");
            var fromPodman = await ImageArchiveWriter.WriteAsync(podmanEngine, request, CancellationToken.None);
            Assert.AreEqual(fromDocker.Digest, fromPodman.Digest, "the same manifest");
            CollectionAssert.AreEqual(File.ReadAllBytes(fromDocker.Path), File.ReadAllBytes(fromPodman.Path), "the same archive, byte for byte");

            var docker = Request("podman-docker.tar", ArchiveFormat.Docker, [image], "candidate", "1.2.3");
            Assert.AreEqual(image.ImageId, (await ImageArchiveWriter.WriteAsync(podmanEngine, docker, CancellationToken.None)).Digest);
            var contents = await ImageArchiveContents.ReadAsync(docker.Path, CancellationToken.None);
            Assert.IsNotNull(contents, "the docker archive of Podman's save is read back");
            Assert.IsTrue(contents.Holds(docker));
        }
        finally
        {
            await TestDocker.RemoveImageAsync(podmanClient, image.ImageId);
        }
    }
}
