using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MsArchiveOutputPath on a built project, checked with the clients users have: skopeo and umoci read the OCI archive
/// (the injected file's content, owner and ACL), cdxgen reads the docker archive and finds the SBOM's Debian packages.
/// An up-to-date build keeps an archive that holds the candidate, and one written again is the same bytes.
/// </summary>
[TestClass]
public sealed class ImageArchiveOutputTests
{
    private const string AclUser = "4242";
    private static string Arch => RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "arm64" : "amd64";

    [TestMethod]
    public async Task Oci_archive_is_read_by_skopeo_and_umoci_with_the_acl_holds_the_sbom_and_is_kept_while_it_holds_the_candidate()
    {
        RequireTools("skopeo", "umoci", "getfacl");
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-oci-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var secret = project.Write("injected_volumes/srv/data/secret.txt", "only for 4242\n");
        HostProcess.Run("setfacl", "-m", $"u:{AclUser}:rw", secret);
        var archive = Path.Combine(project.Directory, "out", image.Split('/')[^1] + ".tar");
        try
        {
            var build = await project.BuildAsync("-p:MsArchiveOutputPath=out/", "-p:MsImageTags=1.0");
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, $"Archive: wrote {archive} (oci");
            var imageId = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");

            // skopeo: the names, the config (the engine's, so its digest is the image id), the layers.
            var raw = JsonDocument.Parse(HostProcess.Run("skopeo", "inspect", "--raw", $"oci-archive:{archive}:candidate")).RootElement;
            Assert.AreEqual(imageId, raw.GetProperty("config").GetProperty("digest").GetString());
            var inspected = JsonDocument.Parse(HostProcess.Run("skopeo", "inspect", $"oci-archive:{archive}:1.0")).RootElement;
            Assert.AreEqual(raw.GetProperty("layers").GetArrayLength(), inspected.GetProperty("Layers").GetArrayLength());
            Assert.AreEqual(Arch, inspected.GetProperty("Architecture").GetString());

            // umoci: the layout unpacked gives the injected file with its content, owner and ACL.
            var layout = Path.Combine(project.Directory, "layout");
            Directory.CreateDirectory(layout);
            HostProcess.Run("tar", "-xf", archive, "-C", layout);
            var bundle = Path.Combine(project.Directory, "bundle");
            HostProcess.Run("umoci", "unpack", "--image", $"{layout}:candidate", bundle);
            var unpacked = Path.Combine(bundle, "rootfs", "srv", "data", "secret.txt");
            Assert.AreEqual("only for 4242\n", File.ReadAllText(unpacked));
            StringAssert.Contains(HostProcess.Run("getfacl", "-n", unpacked), $"user:{AclUser}:rw-", "the ACL rode in the layer");
            Assert.AreEqual(0, (int)new Mono.Unix.UnixFileInfo(unpacked).OwnerUserId);

            // The SBOM is in it as it is beside the candidate.
            var sbom = Path.Combine(project.Directory, "obj", "msimage", Arch, "sbom.cdx.json");
            CollectionAssert.AreEqual(File.ReadAllBytes(sbom), File.ReadAllBytes(Path.Combine(layout, "sbom", $"{Arch}.cdx.json")));

            var first = Sha256(archive);
            var written = File.GetLastWriteTimeUtc(archive);
            var upToDate = await project.BuildAsync("-p:MsArchiveOutputPath=out/", "-p:MsImageTags=1.0");
            Assert.IsTrue(upToDate.Succeeded, upToDate.Output);
            StringAssert.Contains(upToDate.Output, "is up to date");
            StringAssert.Contains(upToDate.Output, $"Archive: {archive} already holds");
            Assert.AreEqual(written, File.GetLastWriteTimeUtc(archive), "an archive holding the candidate is kept");

            File.Delete(archive);
            var again = await project.BuildAsync("-p:MsArchiveOutputPath=out/", "-p:MsImageTags=1.0");
            Assert.IsTrue(again.Succeeded, again.Output);
            StringAssert.Contains(again.Output, $"Archive: wrote {archive}", "a missing archive of an up-to-date candidate is written");
            Assert.AreEqual(first, Sha256(archive), "the same candidate gives the same archive");

            var otherTags = await project.BuildAsync("-p:MsArchiveOutputPath=out/", "-p:MsImageTags=2.0");
            Assert.IsTrue(otherTags.Succeeded, otherTags.Output);
            StringAssert.Contains(otherTags.Output, $"Archive: wrote {archive}", "other names are another archive");
            HostProcess.Run("skopeo", "inspect", "--raw", $"oci-archive:{archive}:2.0");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Docker_archive_names_every_tag_and_cdxgen_finds_the_sboms_debian_packages()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-dockerarchive-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var archive = Path.Combine(project.Directory, "image.docker.tar");
        try
        {
            var build = await project.BuildAsync($"-p:MsArchiveOutputPath={archive}", "-p:MsArchiveFormat=docker", "-p:MsImageTags=1.0");
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, $"Archive: wrote {archive} (docker");
            var layout = Directory.CreateDirectory(Path.Combine(project.Directory, "saved")).FullName;
            HostProcess.Run("tar", "-xf", archive, "-C", layout, "manifest.json");
            var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(layout, "manifest.json"))).RootElement;
            CollectionAssert.AreEqual(new[] { $"{image}:candidate", $"{image}:1.0" },
                manifest[0].GetProperty("RepoTags").EnumerateArray().Select(t => t.GetString()).ToArray());

            // cdxgen lists every package dpkg has, and adds each one's source package as a component of its own.
            var sbom = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(project.Directory, "obj", "msimage", Arch, "sbom.cdx.json"))).RootElement;
            var ours = sbom.GetProperty("components").EnumerateArray().Where(c => c.GetProperty("bom-ref").GetString()!.StartsWith("pkg:deb/", StringComparison.Ordinal)).ToArray();
            var packages = ours.Select(c => $"{c.GetProperty("name").GetString()}@{c.GetProperty("version").GetString()}").ToHashSet();
            var sources = ours.Select(c => c.GetProperty("properties").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("value").GetString()))
                .Select(p => $"{p["debian:source"]}@{p["debian:source-version"]}").ToHashSet();
            var cdxgen = JsonDocument.Parse(CycloneDxClients.CdxgenOfDockerArchive(archive, Path.Combine(project.Directory, "cdxgen.json"))).RootElement;
            var theirs = cdxgen.GetProperty("components").EnumerateArray()
                .Where(c => c.TryGetProperty("purl", out var purl) && purl.GetString()!.StartsWith("pkg:deb/", StringComparison.Ordinal))
                .Select(c => $"{c.GetProperty("name").GetString()}@{c.GetProperty("version").GetString()}").ToHashSet();
            Assert.IsTrue(packages.Count > 50);
            CollectionAssert.AreEquivalent(Array.Empty<string>(), packages.Except(theirs).ToArray(), "packages of the SBOM cdxgen does not find");
            CollectionAssert.AreEquivalent(Array.Empty<string>(), theirs.Except(packages).Except(sources).ToArray(), "packages cdxgen finds that are neither a package nor a source package of the SBOM");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    private static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }

    private static void RequireTools(params string[] tools)
    {
        foreach (var tool in tools.Where(t => !File.Exists($"/usr/bin/{t}")))
        {
            TestDocker.MissingPrerequisite($"{tool} is not installed; bash .ci/setup installs it");
        }
    }
}
