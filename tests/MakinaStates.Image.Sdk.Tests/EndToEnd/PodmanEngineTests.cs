using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Podman (rootful) through its Docker-compatible API, with every check of <see cref="EngineKindChecks"/>: the base
/// imported from the SDK's own tarball, the engine named in Stage0's line.
/// </summary>
[TestClass]
public sealed class PodmanEngineTests : EngineKindChecks
{
    private static SampleRun? s_sample;

    protected override SampleRun Sample => s_sample ?? throw new InvalidOperationException("the sample was not built");

    protected override string ExpectedCgroupAccess => "HostTreeReadOnly";

    [ClassInitialize]
    public static async Task BuildTheSampleOnPodman(TestContext _)
    {
        var podman = await SharedPodmanService.GetAsync();
        s_sample = await BuildSampleAsync(podman.Host, podman.Connect(), "podman");
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        await SampleRun.RemoveAsync(s_sample);
    }

    [TestMethod]
    public void Stage0_names_podman_as_the_engine()
    {
        StringAssert.Contains(Sample.Build.Output, $"Engine: {Sample.Host} (from MsDockerHost); Podman ");
        StringAssert.Contains(Sample.Build.Output, "(Docker API 1.41)");
    }

    [TestMethod]
    public async Task The_candidate_has_the_sdks_config_and_the_next_build_is_up_to_date()
    {
        // Podman's commit applies only the changes: labels, command and stop signal must arrive that way.
        var image = await Sample.Engine.Images.InspectImageAsync($"{Sample.Image}:candidate");
        var labels = new Dictionary<string, string>(image.Config!.Labels!);
        Assert.IsFalse(string.IsNullOrEmpty(labels.GetValueOrDefault("io.makinastates.inputs-key")), "no inputs key: never up to date");
        Assert.AreEqual("", labels.GetValueOrDefault("io.makinastates.build-id"), "the build's own label leaked into the image");
        Assert.IsTrue(labels.ContainsKey("org.opencontainers.image.created"));
        CollectionAssert.AreEqual(new[] { "/sbin/init" }, image.Config.Cmd!.ToArray());
        Assert.IsTrue(image.Config.StopSignal is "SIGRTMIN+3" or "37", image.Config.StopSignal);
        var again = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "hello-systemd", "hello-systemd.proj"),
            [$"-p:MsDockerHost={Sample.Host}", $"-p:MsImage={Sample.Image}"]);
        Assert.IsTrue(again.Succeeded, again.Output);
        StringAssert.Contains(again.Output, "Image build summary: up to date");
    }

    [TestMethod]
    public async Task An_arm64_image_builds_under_emulation_and_says_arm64()
    {
        HostEmulation.RequireArm64();
        // The platform is set by a save, a rewritten config and a load through Podman's compat API too.
        var image = $"makinastates/test-podman-arm64-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image, "<PropertyGroup><MsPlatform>linux/arm64</MsPlatform></PropertyGroup>");
        var before = (await Sample.Engine.Images.ListImagesAsync(new Docker.DotNet.Models.ImagesListParameters())).SelectMany(i => i.RepoTags ?? []).ToHashSet();
        try
        {
            var build = await project.BuildAsync($"-p:MsDockerHost={Sample.Host}");
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "masked in the build container only");
            var candidate = await Sample.Engine.Images.InspectImageAsync($"{image}:candidate");
            Assert.AreEqual("arm64", candidate.Architecture);
            Assert.AreEqual(0, (await TestDocker.ContainersWithLabelAsync(Sample.Engine, $"io.makinastates.image={image}")).Count);
        }
        finally
        {
            await TestDocker.RemoveImageAsync(Sample.Engine, $"{image}:candidate");
            await TestDocker.RemoveImageAsync(Sample.Engine, $"{image}-stage1:arm64");
            // The arm64 base's import: the shared service keeps only the sample's base (another test counts them).
            foreach (var tag in (await Sample.Engine.Images.ListImagesAsync(new Docker.DotNet.Models.ImagesListParameters())).SelectMany(i => i.RepoTags ?? [])
                .Where(t => t.Contains("makinastates/base-", StringComparison.Ordinal) && !before.Contains(t)))
            {
                await TestDocker.RemoveImageAsync(Sample.Engine, tag);
            }
        }
    }

    [TestMethod]
    public async Task The_base_is_imported_under_the_tag_the_next_build_looks_for()
    {
        var bases = await Sample.Engine.Images.ListImagesAsync(new Docker.DotNet.Models.ImagesListParameters());
        var tags = bases.SelectMany(i => i.RepoTags ?? []).Where(t => t.Contains("makinastates/base-", StringComparison.Ordinal)).ToList();
        Assert.AreEqual(1, tags.Count, string.Join(", ", tags));
        Assert.IsFalse(tags[0].EndsWith(":latest", StringComparison.Ordinal), tags[0]);
        // The next build of another image reuses that import.
        var image = $"makinastates/test-podman-reuse-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        try
        {
            var build = await project.BuildAsync($"-p:MsDockerHost={Sample.Host}");
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "already imported");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(Sample.Engine, image);
        }
    }
}

/// <summary>The file-fidelity fixture on Podman: ACLs restored at boot there too.</summary>
[TestClass]
public sealed class PodmanFileFidelityTests : FileFidelityChecks
{
    private static FidelityRun? s_run;
    private static DockerClient? s_podman;

    protected override FidelityRun Run => s_run ?? throw new InvalidOperationException("the fixture was not built");

    [ClassInitialize]
    public static async Task BuildFixtureImageOnPodman(TestContext _)
    {
        (await TestDocker.RequireEngineAsync()).Dispose();
        var podman = await SharedPodmanService.GetAsync();
        s_podman = podman.Connect();
        s_run = await BuildAndBootAsync(s_podman, $"-p:MsDockerHost={podman.Host}");
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_run is not null) await s_run.DisposeAsync();
        s_podman?.Dispose();
    }
}
