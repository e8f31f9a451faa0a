using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Where most users are: a cgroup v2 engine (Docker before 28.0, so the read-write bind of the host's cgroup tree;
/// the writable-cgroups path of Docker 28 is unit-tested). The sample builds, boots and serves its page there, a
/// failing stage3 and a Ctrl+C leave no container on either engine, and a PID 1 that dies is an error in systemd's words.
/// </summary>
[TestClass]
public sealed class CgroupV2EngineTests
{
    private static readonly string Sample = $"makinastates/test-v2-sample-{Guid.NewGuid():N}"[..44];
    private static CgroupV2DockerEngine? s_engine;
    private static DockerClient? s_v2;
    private static DockerClient? s_main;
    private static DotnetBuild? s_sampleBuild;
    private static string? s_sampleContainer;

    private static string EngineArgument => $"-p:MsDockerHost={s_engine!.Host}";

    [ClassInitialize]
    public static async Task BuildTheSampleOnCgroupV2(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_main = await TestDocker.RequireEngineAsync();
        s_engine = await SharedCgroupV2Engine.GetAsync();
        s_v2 = s_engine.Connect();
        s_sampleBuild = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "hello-systemd", "hello-systemd.proj"),
            [EngineArgument, $"-p:MsImage={Sample}"]);
        if (s_sampleBuild.Succeeded)
        {
            s_sampleContainer = await TestDocker.BootAsync(s_v2, $"{Sample}:candidate", $"v2-sample-test-{Guid.NewGuid():N}");
        }
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_v2 is not null)
        {
            if (s_sampleContainer is not null) await TestDocker.RemoveContainerAsync(s_v2, s_sampleContainer);
            await TestDocker.RemoveProjectImagesAsync(s_v2, Sample);
            s_v2.Dispose();
        }
        s_main?.Dispose();
    }

    private static async Task<string> InSample(string command)
    {
        Assert.IsTrue(s_sampleBuild!.Succeeded, s_sampleBuild.Output);
        var (code, output) = await TestDocker.ExecAsync(s_v2!, s_sampleContainer!, command);
        Assert.AreEqual(0L, code, $"{command}: {output}");
        return output.Trim();
    }

    [TestMethod]
    public async Task The_sample_builds_boots_with_systemd_as_pid_1_and_serves_its_page()
    {
        StringAssert.Contains(s_sampleBuild!.Output, $"Check image tag: {Sample}:candidate");
        StringAssert.Contains(s_sampleBuild.Output, "systemd's cgroup: HostTreeReadWrite");
        Assert.AreEqual("systemd", await InSample("cat /proc/1/comm"));
        var state = await InSample("systemctl is-system-running --wait || true");
        Assert.IsTrue(state is "running" or "degraded", state);
        var response = await InSample("exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
        StringAssert.StartsWith(response, "HTTP/1.0 200 OK");
        StringAssert.Contains(response, "Hello from systemd");
        Assert.IsNull(await TestDocker.ImageIdAsync(s_main!, $"{Sample}:candidate"), "the build went to the main engine");
    }

    [TestMethod]
    public async Task Systemd_stays_in_the_containers_own_cgroup()
    {
        // The host's tree is writable here: systemd must still work below the container's cgroup, never at the root.
        var cgroup = await InSample("grep '^0::' /proc/1/cgroup");
        StringAssert.StartsWith(cgroup, "0::/docker/");
        StringAssert.EndsWith(cgroup, "/init.scope");
    }

    [TestMethod]
    public async Task The_main_engines_network_is_untouched()
    {
        Assert.IsNotNull(s_engine);
        StringAssert.Contains(HostProcess.Run("ip", "-o", "link", "show", "docker0"), "docker0");
        var info = await s_main!.System.GetSystemInfoAsync();
        Assert.AreEqual("1", info.CgroupVersion, "the main engine of this machine is cgroup v1");
    }

    [TestMethod]
    public async Task A_failing_stage3_leaves_no_container_on_either_engine()
    {
        var image = $"makinastates/test-v2-fails-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho 'v2 stage3 fails now'\nexit 9\n", executable: true);
        try
        {
            var build = await project.BuildAsync(EngineArgument);
            Assert.IsFalse(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "error MSI3001");
            StringAssert.Contains(build.Output, "v2 stage3 fails now");
            await AssertNoContainerOfAsync(image);
            Assert.IsNull(await TestDocker.ImageIdAsync(s_v2!, $"{image}:candidate"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(s_v2!, image);
        }
    }

    [TestMethod]
    public async Task Ctrl_c_during_stage3_leaves_no_container()
    {
        var image = $"makinastates/test-v2-sigint-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho 'v2 stage3 is sleeping'\nsleep 120\n", executable: true);
        try
        {
            await using var build = DotnetBuild.Running.Start(project.ProjectFile, [EngineArgument]);
            await build.WaitForOutputAsync("v2 stage3 is sleeping", TimeSpan.FromMinutes(5));
            Assert.AreEqual(1, (await ContainersOfAsync(s_v2!, image)).Count, "the stage container runs on the v2 engine");
            Assert.AreEqual(0, Syscall.kill(build.Process.Id, Signum.SIGINT));
            var result = await build.CompleteAsync(TimeSpan.FromSeconds(60));
            Assert.AreNotEqual(0, result.ExitCode, result.Output);
            await AssertNoContainerOfAsync(image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(s_v2!, image);
        }
    }

    [TestMethod]
    public async Task A_pid_1_that_exits_is_a_boot_error_in_systemds_words()
    {
        // The cgroup tree read-only again (the user's -v replaces the SDK's bind): systemd cannot make init.scope.
        var image = $"makinastates/test-v2-noboot-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        try
        {
            var build = await project.BuildAsync(EngineArgument, "-p:MsDockerArgs=\"-v /sys/fs/cgroup:/sys/fs/cgroup:ro\"");
            Assert.IsFalse(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "error MSI2003");
            StringAssert.Contains(build.Output, "PID 1 of the build container exited");
            StringAssert.Contains(build.Output, "init.scope control group: Read-only file system");
            Assert.IsFalse(build.Output.Contains("(409)", StringComparison.Ordinal), "a bare engine conflict instead of the boot error");
            await AssertNoContainerOfAsync(image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(s_v2!, image);
        }
    }

    /// <summary>By the image label, which every stage container carries whether or not a build id was printed.</summary>
    private static Task<IList<Docker.DotNet.Models.ContainerListResponse>> ContainersOfAsync(DockerClient engine, string image) =>
        TestDocker.ContainersWithLabelAsync(engine, $"io.makinastates.image={image}");

    private static async Task AssertNoContainerOfAsync(string image)
    {
        foreach (var (name, engine) in new[] { ("v2", s_v2!), ("main", s_main!) })
        {
            var left = await ContainersOfAsync(engine, image);
            Assert.AreEqual(0, left.Count, $"{name} engine: {string.Join(", ", left.SelectMany(c => c.Names))}");
        }
    }
}

/// <summary>The file-fidelity fixture on the cgroup v2 engine: ACLs restored at boot there too.</summary>
[TestClass]
public sealed class CgroupV2FileFidelityTests : FileFidelityChecks
{
    private static FidelityRun? s_run;
    private static DockerClient? s_v2;

    protected override FidelityRun Run => s_run ?? throw new InvalidOperationException("the fixture was not built");

    [ClassInitialize]
    public static async Task BuildFixtureImageOnCgroupV2(TestContext _)
    {
        (await TestDocker.RequireEngineAsync()).Dispose();
        var engine = await SharedCgroupV2Engine.GetAsync();
        s_v2 = engine.Connect();
        s_run = await BuildAndBootAsync(s_v2, $"-p:MsDockerHost={engine.Host}");
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_run is not null) await s_run.DisposeAsync();
        s_v2?.Dispose();
    }
}
