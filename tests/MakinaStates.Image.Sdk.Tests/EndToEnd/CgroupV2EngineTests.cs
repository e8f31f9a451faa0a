using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Where most users are: a cgroup v2 engine (Docker before 28.0, so the read-write bind of the host's cgroup tree;
/// the writable-cgroups path of Docker 28 is unit-tested), with every check of <see cref="EngineKindChecks"/>, and a
/// PID 1 that dies is an error in systemd's words.
/// </summary>
[TestClass]
public sealed class CgroupV2EngineTests : EngineKindChecks
{
    private static SampleRun? s_sample;

    protected override SampleRun Sample => s_sample ?? throw new InvalidOperationException("the sample was not built");

    protected override string ExpectedCgroupAccess => "HostTreeReadWrite";

    [ClassInitialize]
    public static async Task BuildTheSampleOnCgroupV2(TestContext _)
    {
        var engine = await SharedCgroupV2Engine.GetAsync();
        s_sample = await BuildSampleAsync(engine.Host, engine.Connect(), "v2");
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        await SampleRun.RemoveAsync(s_sample);
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
        StringAssert.Contains(HostProcess.Run("ip", "-o", "link", "show", "docker0"), "docker0");
        var info = await Sample.Main.System.GetSystemInfoAsync();
        Assert.AreEqual("1", info.CgroupVersion, "the main engine of this machine is cgroup v1");
        Assert.AreEqual("2", (await Sample.Engine.System.GetSystemInfoAsync()).CgroupVersion);
    }

    [TestMethod]
    public async Task A_pid_1_that_exits_is_a_boot_error_in_systemds_words()
    {
        // The cgroup tree read-only again (the user's -v replaces the SDK's bind): systemd cannot make init.scope.
        var image = $"makinastates/test-v2-noboot-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        try
        {
            var build = await project.BuildAsync($"-p:MsDockerHost={Sample.Host}", "-p:MsDockerArgs=\"-v /sys/fs/cgroup:/sys/fs/cgroup:ro\"");
            Assert.IsFalse(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "error MSI2003");
            StringAssert.Contains(build.Output, "PID 1 of the build container exited");
            StringAssert.Contains(build.Output, "init.scope control group: Read-only file system");
            Assert.IsFalse(build.Output.Contains("(409)", StringComparison.Ordinal), "a bare engine conflict instead of the boot error");
            await AssertNoContainerOfAsync(image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(Sample.Engine, image);
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
