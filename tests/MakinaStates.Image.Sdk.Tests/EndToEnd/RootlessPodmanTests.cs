using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// `dotnet build` as an unprivileged user against that user's rootless Podman, found by the SDK itself at
/// $XDG_RUNTIME_DIR/podman/podman.sock: on a delegated cgroup v2 subtree the candidate boots systemd with the injected
/// ACLs; where the engine's cgroup is not delegated, a coded error comes before any stage.
/// </summary>
[TestClass]
public sealed class RootlessPodmanTests
{
    /// <summary>This machine's /dev/net/tun is root-only, so slirp4netns (rootless networking) cannot run here.</summary>
    private const string NoNetwork = "-p:MsDockerArgs=--network none";

    private static RootlessPodman? s_podman;
    private static ImageProject? s_project;
    private static DotnetBuild? s_build;
    private static DockerClient? s_client;
    private static string? s_container;
    private static string? s_sharedBase;

    [ClassInitialize]
    public static async Task BuildAsARootlessUser(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_sharedBase = await SharedBaseTarballAsync();
        s_podman = await RootlessPodman.StartAsync(delegatedCgroup: true);
        s_client = s_podman.Connect();
        s_project = new ImageProject($"makinastates/test-rootless-{Guid.NewGuid():N}"[..44],
            $"<PropertyGroup><MsBaseImage>{s_sharedBase}</MsBaseImage></PropertyGroup>");
        s_project.Write("injected_volumes/srv/rootless/acl-file", "acl\n");
        HostProcess.Run("setfacl", "-m", "u:4242:rw", Path.Combine(s_project.Directory, "injected_volumes/srv/rootless/acl-file"));
        s_project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\nset -e\necho rootless-stage3 > /srv/rootless/by-stage3\nsetfacl -m u:4244:r /srv/rootless/by-stage3\n", executable: true);
        s_podman.Own(s_project.Directory);
        s_build = await DotnetBuild.RunAsync(s_project.ProjectFile, [NoNetwork], launcher: s_podman.AsUser);
        if (s_build.Succeeded)
        {
            s_container = await BootAsync(s_client, $"{s_project.Image}:candidate");
        }
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_client is not null && s_container is not null) await TestDocker.RemoveContainerAsync(s_client, s_container);
        s_client?.Dispose();
        if (s_podman is not null) await s_podman.DisposeAsync();
        s_project?.Dispose();
        if (s_sharedBase is not null) Directory.Delete(Path.GetDirectoryName(s_sharedBase)!, recursive: true);
    }

    /// <summary>
    /// A rootless user cannot debootstrap: the base is a tarball it already has, here root's, shared read-only (made by
    /// a build as root first if this run has not made it yet).
    /// </summary>
    private static async Task<string> SharedBaseTarballAsync()
    {
        var rootBase = Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } cache ? cache : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
            "makinastates-image", "baseimage-debian-bookworm.tar.xz");
        if (!File.Exists(rootBase))
        {
            using var docker = await TestDocker.RequireEngineAsync();
            using var project = new ImageProject($"makinastates/test-rootless-base-{Guid.NewGuid():N}"[..44]);
            var build = await project.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            await TestDocker.RemoveProjectImagesAsync(docker, project.Image);
        }
        var shared = Directory.CreateTempSubdirectory("msrl-base-").FullName;
        File.SetUnixFileMode(shared, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var copy = Path.Combine(shared, Path.GetFileName(rootBase));
        File.Copy(rootBase, copy);
        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return copy;
    }

    /// <summary>Runs the candidate as the user would (`podman run`, no network here), and waits for systemd.</summary>
    private static async Task<string> BootAsync(DockerClient client, string image)
    {
        var spec = SystemdContainerSpec.Create(image, $"rootless-test-{Guid.NewGuid():N}", ["/sbin/init"], new Dictionary<string, string>(), SystemdCgroupAccess.PodmanSystemdMode);
        spec.HostConfig!.NetworkMode = "none";
        var created = await client.Containers.CreateContainerAsync(spec);
        await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
        var deadline = DateTime.UtcNow.AddSeconds(120);
        var answer = "";
        while (DateTime.UtcNow < deadline)
        {
            (_, answer) = await TestDocker.ExecAsync(client, created.ID, "systemctl is-system-running --wait || true");
            if (answer.Trim() is "running" or "degraded")
            {
                return created.ID;
            }
            await Task.Delay(500);
        }
        await TestDocker.RemoveContainerAsync(client, created.ID);
        Assert.Fail($"the rootless candidate did not boot: '{answer}'");
        throw new InvalidOperationException();
    }

    private static async Task<string> Inside(string command)
    {
        Assert.IsTrue(s_build!.Succeeded, s_build.Output);
        var (code, output) = await TestDocker.ExecAsync(s_client!, s_container!, command);
        Assert.AreEqual(0L, code, $"{command}: {output}");
        return output.Trim();
    }

    [TestMethod]
    public void The_sdk_finds_the_users_podman_and_says_it_is_rootless()
    {
        Assert.IsTrue(s_build!.Succeeded, s_build.Output);
        StringAssert.Contains(s_build.Output, $"Engine: {s_podman!.Host} (from the rootless Podman socket in XDG_RUNTIME_DIR");
        StringAssert.Contains(s_build.Output, "cgroup v2, rootless");
        StringAssert.Contains(s_build.Output, $"Check image tag: {s_project!.Image}:candidate");
    }

    [TestMethod]
    public async Task The_candidate_boots_systemd_as_pid_1_with_the_injected_acls()
    {
        Assert.AreEqual("systemd", await Inside("cat /proc/1/comm"));
        StringAssert.Contains(await Inside("getfacl -n -c /srv/rootless/acl-file"), "user:4242:rw-");
        StringAssert.Contains(await Inside("getfacl -n -c /srv/rootless/by-stage3"), "user:4244:r--");
    }

    [TestMethod]
    public async Task No_stage_container_is_left()
    {
        Assert.IsTrue(s_build!.Succeeded, s_build.Output);
        var left = await TestDocker.ContainersWithLabelAsync(s_client!, $"io.makinastates.build-id={s_build.BuildId}");
        Assert.AreEqual(0, left.Count);
    }

    [TestMethod]
    public async Task An_engine_without_a_delegated_cgroup_is_MSI0109_before_any_stage()
    {
        await using var podman = await RootlessPodman.StartAsync(delegatedCgroup: false);
        using var project = new ImageProject($"makinastates/test-rootless-nodeleg-{Guid.NewGuid():N}"[..44],
            $"<PropertyGroup><MsBaseImage>{s_sharedBase}</MsBaseImage></PropertyGroup>");
        podman.Own(project.Directory);
        var build = await DotnetBuild.RunAsync(project.ProjectFile, [NoNetwork], launcher: podman.AsUser);
        Assert.IsFalse(build.Succeeded, build.Output);
        StringAssert.Contains(build.Output, "error MSI0109");
        StringAssert.Contains(build.Output, "does not own");
        Assert.IsFalse(build.Output.Contains("MsStage1:", StringComparison.Ordinal), "a stage ran");
        using var client = podman.Connect();
        Assert.AreEqual(0, (await client.Containers.ListContainersAsync(new ContainersListParameters { All = true })).Count);
        Assert.AreEqual(0, (await client.Images.ListImagesAsync(new ImagesListParameters())).Count, "the base was imported anyway");
    }

    [TestMethod]
    public async Task Without_a_base_tarball_or_a_builder_image_it_is_MSI1005_naming_both()
    {
        // No root for debootstrap, no registry for the builder's FROM: the build says which of the two to provide.
        using var project = new ImageProject($"makinastates/test-rootless-nobase-{Guid.NewGuid():N}"[..44],
            "<PropertyGroup><MsBaseImage>missing-baseimage.tar.xz</MsBaseImage><MsOsMirror>http://127.0.0.1:9/debian</MsOsMirror></PropertyGroup>");
        s_podman!.Own(project.Directory);
        var build = await DotnetBuild.RunAsync(project.ProjectFile, [NoNetwork], launcher: s_podman.AsUser, timeout: TimeSpan.FromMinutes(5));
        Assert.IsFalse(build.Succeeded, build.Output);
        StringAssert.Contains(build.Output, "error MSI1005");
        StringAssert.Contains(build.Output, "missing-baseimage.tar.xz");
        StringAssert.Contains(build.Output, "MsSkipStage0Build=true");
        var left = await TestDocker.ContainersWithLabelAsync(s_client!, $"io.makinastates.image={project.Image}");
        Assert.AreEqual(0, left.Count);
    }
}
