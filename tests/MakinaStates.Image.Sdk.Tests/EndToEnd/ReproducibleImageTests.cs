using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The same inputs give the same image: each committed layer is written again with its times clamped to the epoch
/// (the base tarball's time by default), the config's times are the epoch, and the snapshot leaves no build-time
/// content. And the ACLs live in the layers: a container that never boots has them.
/// </summary>
[TestClass]
public sealed class ReproducibleImageTests
{
    /// <summary>
    /// samples/hello-systemd, copied twice (two clones of one commit, in different folders): forced rebuilds, a rebuild
    /// after the candidate and stage1 are removed, and the other clone all give one image id and one pushed digest.
    /// </summary>
    [TestMethod]
    public async Task The_sample_rebuilt_forced_after_rmi_and_from_another_clone_is_the_same_image_and_pushes_the_same_digest()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        using var registry = await LocalRegistry.StartAsync();
        var image = $"makinastates/test-repro-hello-{Guid.NewGuid():N}"[..44];
        using var first = CloneOfSample();
        using var second = CloneOfSample();
        string[] Arguments(params string[] more) => [$"-p:MsImage={image}", "-p:MsPush=true", $"-p:MsRegistry={registry.Address}", .. more];
        try
        {
            var built = await BuildAsync(first, Arguments());
            StringAssert.Contains(built.Output, "from the base tarball's time", "the default epoch is the base's");
            var id = await CandidateIdAsync(docker, image);
            var digest = await PushedDigestAsync(registry, image);
            var created = (await docker.Images.InspectImageAsync(id)).Created!.Value;

            await BuildAsync(first, Arguments("-p:MsForceRebuild=true"));
            Assert.AreEqual(id, await CandidateIdAsync(docker, image), "a forced rebuild gives the same image");
            Assert.AreEqual(digest, await PushedDigestAsync(registry, image), "and the registry the same manifest");

            // Stage1 is made again too (the base import stays).
            await TestDocker.RemoveImageAsync(docker, $"{image}:candidate");
            await TestDocker.RemoveImageAsync(docker, $"{image}-stage1:latest");
            var again = await BuildAsync(first, Arguments());
            StringAssert.Contains(again.Output, $"Stage1: making {image}-stage1:latest");
            Assert.AreEqual(id, await CandidateIdAsync(docker, image), "after docker rmi of the candidate and stage1");

            await BuildAsync(second, Arguments("-p:MsForceRebuild=true"));
            Assert.AreEqual(id, await CandidateIdAsync(docker, image), "another clone, in another folder");
            Assert.AreEqual(digest, await PushedDigestAsync(registry, image));

            // The image's time is the epoch: no build time is left in it.
            var inspected = await docker.Images.InspectImageAsync(id);
            Assert.AreEqual(created, inspected.Created);
            Assert.IsTrue(inspected.Created < DateTime.UtcNow.AddMinutes(-5), $"created {inspected.Created:o} is the base's time, not the build's");
            var history = await docker.Images.GetImageHistoryAsync(id);
            Assert.IsTrue(history.All(h => h.Created <= inspected.Created!.Value), "no history time after the epoch");
            Assert.AreEqual(inspected.Created!.Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"), inspected.Config!.Labels!["org.opencontainers.image.created"]);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    /// <summary>A stage3 that apt-installs a package from the mirror: apt's lists, caches and logs leave no trace.</summary>
    [TestMethod]
    public async Task A_stage3_that_apt_installs_a_package_gives_the_same_image_twice()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-repro-apt-{Guid.NewGuid():N}"[..42];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends tree
            tree --version
            """, executable: true);
        try
        {
            await BuildAsync(project.Directory, [project.ProjectFile]);
            var id = await CandidateIdAsync(docker, image);
            StringAssert.Contains(await TestDocker.RunInImageAsync(docker, $"{image}:candidate", "tree --version"), "tree v");
            await BuildAsync(project.Directory, [project.ProjectFile, "-p:MsForceRebuild=true"]);
            Assert.AreEqual(id, await CandidateIdAsync(docker, image));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    /// <summary>
    /// The injected ACLs are in the candidate's layer: `docker run --entrypoint getfacl` shows them with no boot, and so
    /// does a clean Podman service that pulled the candidate from a registry.
    /// </summary>
    [TestMethod]
    public async Task The_injected_acls_are_in_the_layers_without_a_boot_and_after_a_push_and_a_pull_into_podman()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        using var registry = await LocalRegistry.StartAsync();
        var image = $"makinastates/test-repro-acl-{Guid.NewGuid():N}"[..42];
        using var project = new ImageProject(image);
        var file = project.Write("injected_volumes/srv/app/shared.txt", "shared\n");
        Directory.CreateDirectory(Path.Combine(project.Directory, "injected_volumes/srv/app/drop"));
        HostProcess.Run("setfacl", "-m", "u:4242:rw,g:4243:r", file);
        HostProcess.Run("setfacl", "-m", "u:4242:rwx", "-d", "-m", "g:4243:rwx", Path.Combine(project.Directory, "injected_volumes/srv/app/drop"));
        try
        {
            await BuildAsync(project.Directory, [project.ProjectFile, "-p:MsPush=true", $"-p:MsRegistry={registry.Address}"]);
            AssertAcls(await TestDocker.RunWithEntrypointAsync(docker, $"{image}:candidate", ["getfacl"], GetfaclArguments), "docker run --entrypoint getfacl");

            await using var podman = await PodmanService.StartAsync(insecureRegistry: registry.Address);
            using var client = podman.Connect();
            await client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = $"{registry.Address}/{image}", Tag = "candidate" }, null,
                new Progress<JSONMessage>());
            AssertAcls(await TestDocker.RunWithEntrypointAsync(client, $"{registry.Address}/{image}:candidate", ["getfacl"], GetfaclArguments),
                "podman, pulled from the registry");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    private static readonly string[] GetfaclArguments = ["-n", "-p", "/srv/app/shared.txt", "/srv/app/drop"];

    private static void AssertAcls(string shown, string where)
    {
        StringAssert.Contains(shown, "# file: /srv/app/shared.txt\n# owner: 0\n# group: 0\nuser::rw-\nuser:4242:rw-\ngroup::r--\ngroup:4243:r--\n", where);
        StringAssert.Contains(shown, "default:group:4243:rwx", where);
        StringAssert.Contains(shown, "user:4242:rwx", where);
    }

    /// <summary>A copy of samples/hello-systemd in a folder of its own, resolving the SDK from the repository's feed.</summary>
    private static TemporaryFolder CloneOfSample()
    {
        var folder = new TemporaryFolder("msimage-repro-clone-");
        var sample = Path.Combine(Repository.Root, "samples", "hello-systemd");
        HostProcess.Run("cp", "-a", sample + "/.", folder.Path);
        foreach (var generated in new[] { "obj", "bin" })
        {
            var path = Path.Combine(folder.Path, generated);
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        ImageProject.WriteNugetConfig(folder.Path);
        return folder;
    }

    private sealed class TemporaryFolder(string prefix) : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

        public static implicit operator string(TemporaryFolder folder) => folder.Path;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    private static async Task<DotnetBuild> BuildAsync(string folder, string[] arguments)
    {
        var project = arguments.FirstOrDefault(a => a.EndsWith(".proj", StringComparison.Ordinal)) ?? Path.Combine(folder, "hello-systemd.proj");
        var build = await DotnetBuild.RunAsync(project, [.. arguments.Where(a => a != project)]);
        Assert.IsTrue(build.Succeeded, build.Output);
        return build;
    }

    private static async Task<string> CandidateIdAsync(DockerClient docker, string image) =>
        await TestDocker.ImageIdAsync(docker, $"{image}:candidate") ?? throw new AssertFailedException($"{image}:candidate is missing");

    private static async Task<string> PushedDigestAsync(LocalRegistry registry, string image)
    {
        var (status, digest, _) = await registry.GetManifestAsync(image, "candidate");
        Assert.AreEqual(System.Net.HttpStatusCode.OK, status);
        return digest!;
    }
}
