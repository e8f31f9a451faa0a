using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// An engine reached only through the tests' own sshd, by its socket path: every check of <see cref="EngineKindChecks"/>,
/// each build told to use the sshd's ssh config, and after each no ssh process and no tunnel folder left.
/// </summary>
public abstract class SshEngineKindChecks : EngineKindChecks
{
    protected abstract TestSshd Sshd { get; }

    protected override string[] BuildArguments => [SshEngine.SshCommandArgument(Sshd)];

    protected override Task AssertConnectionEndedAsync() => SshEngine.AssertTunnelEndedAsync(Sshd);

    [TestMethod]
    public void Stage0_names_the_ssh_endpoint_and_uploads_what_the_remote_needs()
    {
        StringAssert.Contains(Sample.Build.Output, $"Engine: {Sample.Host} over SSH, its socket ");
        StringAssert.Contains(Sample.Build.Output, "not on this machine, so the data dir and the injected tree are uploaded");
    }
}

/// <summary>What an SSH engine's tests share: their sshd, the SDK told to use its ssh config, and nothing left after.</summary>
public static class SshEngine
{
    public static string SshCommandArgument(TestSshd sshd) => $"-p:MsSshCommand={sshd.SshCommand}";

    /// <summary>No ssh process of the sshd's files, and no tunnel folder, once a build is over.</summary>
    public static async Task AssertTunnelEndedAsync(TestSshd sshd)
    {
        for (var i = 0; i < 50 && sshd.SshProcesses().Length > 0; i++)
        {
            await Task.Delay(100);
        }
        CollectionAssert.AreEqual(Array.Empty<string>(), sshd.SshProcesses(), "an ssh process outlived the build");
        CollectionAssert.AreEqual(Array.Empty<string>(), TestSshd.TunnelFolders(), "a tunnel folder (its sockets) outlived the build");
    }

    /// <summary>A class's cleanup: its sample (through its engine, so before the sshd), then its sshd.</summary>
    public static async Task CleanupAsync(Func<Task> removeSample, TestSshd? sshd)
    {
        await removeSample();
        if (sshd is not null)
        {
            await sshd.DisposeAsync();
        }
    }
}

/// <summary>The cgroup v2 engine reached only through an sshd, by its socket path.</summary>
[TestClass]
public sealed class SshCgroupV2EngineTests : SshEngineKindChecks
{
    private static TestSshd? s_sshd;
    private static SampleRun? s_sample;

    protected override SampleRun Sample => s_sample ?? throw new InvalidOperationException("the sample was not built");

    protected override TestSshd Sshd => s_sshd!;

    protected override string ExpectedCgroupAccess => "HostTreeReadWrite";

    [ClassInitialize]
    public static async Task BuildTheSampleOverSsh(TestContext _)
    {
        var engine = await SharedCgroupV2Engine.GetAsync();
        s_sshd = await TestSshd.StartAsync();
        s_sample = await BuildSampleAsync(s_sshd.Address($"{engine.Directory}/docker.sock"), engine.Connect(), "ssh-v2", SshEngine.SshCommandArgument(s_sshd));
    }

    [ClassCleanup]
    public static Task Cleanup() => SshEngine.CleanupAsync(() => SampleRun.RemoveAsync(s_sample), s_sshd);

    [TestMethod]
    public async Task An_injected_files_acl_is_in_the_candidates_layer_before_any_boot()
    {
        var image = $"makinastates/test-ssh-acl-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var secret = project.Write("injected_volumes/srv/ssh/secret.txt", "for 4242 only\n");
        HostProcess.Run("setfacl", "-m", "u:4242:rw", secret);
        try
        {
            var build = await project.BuildAsync([$"-p:MsDockerHost={Sample.Host}", .. BuildArguments]);
            Assert.IsTrue(build.Succeeded, build.Output);
            var acl = await TestDocker.RunWithEntrypointAsync(Sample.Engine, $"{image}:candidate", ["getfacl"], ["-n", "/srv/ssh/secret.txt"]);
            StringAssert.Contains(acl, "user:4242:rw-");
            await AssertNoContainerOfAsync(image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(Sample.Engine, image);
        }
    }
}

/// <summary>The rootful Podman service reached only through an sshd, by its socket path.</summary>
[TestClass]
public sealed class SshPodmanEngineTests : SshEngineKindChecks
{
    private static TestSshd? s_sshd;
    private static SampleRun? s_sample;

    protected override SampleRun Sample => s_sample ?? throw new InvalidOperationException("the sample was not built");

    protected override TestSshd Sshd => s_sshd!;

    protected override string ExpectedCgroupAccess => "HostTreeReadOnly";

    [ClassInitialize]
    public static async Task BuildTheSampleOnPodmanOverSsh(TestContext _)
    {
        var podman = await SharedPodmanService.GetAsync();
        s_sshd = await TestSshd.StartAsync();
        s_sample = await BuildSampleAsync(s_sshd.Address($"{podman.Directory}/podman.sock"), podman.Connect(), "ssh-podman", SshEngine.SshCommandArgument(s_sshd));
    }

    [ClassCleanup]
    public static Task Cleanup() => SshEngine.CleanupAsync(() => SampleRun.RemoveAsync(s_sample), s_sshd);

    [TestMethod]
    public void Stage0_names_podman_as_the_engine()
    {
        StringAssert.Contains(Sample.Build.Output, "; Podman ");
    }
}

/// <summary>
/// ssh:// without a socket path (docker system dial-stdio on the remote, as the docker CLI does), found through a docker
/// context as today's contexts are; and an unknown host key, which fails the build, coded, before any stage.
/// </summary>
[TestClass]
public sealed class SshDialStdioTests
{
    [TestMethod]
    public async Task A_docker_context_with_an_ssh_endpoint_builds_through_dial_stdio()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        await using var sshd = await TestSshd.StartAsync();
        var image = $"makinastates/test-ssh-context-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("injected_volumes/srv/ssh/hello.txt", "over ssh\n");
        // A docker config of its own: the context "builder", current, whose endpoint is the sshd (no socket path).
        var config = Path.Combine(project.Directory, "docker-config");
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("builder")));
        Directory.CreateDirectory(Path.Combine(config, "contexts", "meta", id));
        File.WriteAllText(Path.Combine(config, "contexts", "meta", id, "meta.json"),
            "{\"Name\":\"builder\",\"Metadata\":{},\"Endpoints\":{\"docker\":{\"Host\":\"" + sshd.Address() + "\",\"SkipTLSVerify\":false}}}");
        File.WriteAllText(Path.Combine(config, "config.json"), """{"currentContext":"builder"}""");
        try
        {
            var build = await DotnetBuild.RunAsync(project.ProjectFile, [SshEngine.SshCommandArgument(sshd)],
                new Dictionary<string, string?> { ["DOCKER_CONFIG"] = config, ["DOCKER_HOST"] = null, ["DOCKER_CONTEXT"] = null });
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, $"Engine: {sshd.Address()} over SSH, docker system dial-stdio on the remote (from docker context 'builder'");
            StringAssert.Contains(build.Output, $"Check image tag: {image}:candidate");
            Assert.AreEqual("over ssh\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/ssh/hello.txt"));
            await SshEngine.AssertTunnelEndedAsync(sshd);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task An_unknown_host_key_fails_the_build_coded_within_10_seconds_and_makes_nothing()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        await using var sshd = await TestSshd.StartAsync();
        var unknown = sshd.ClientConfig("unknown");
        var image = $"makinastates/test-ssh-hostkey-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var watch = Stopwatch.StartNew();
        var build = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsSshCommand=ssh -F {unknown}"],
            new Dictionary<string, string?> { ["DOCKER_HOST"] = sshd.Address("/var/run/docker.sock") });
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(10), $"{watch.Elapsed.TotalSeconds:0.0} s");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0112");
        StringAssert.Contains(build.Output, $"ssh-keyscan -p {sshd.Port} 127.0.0.1 >> ~/.ssh/known_hosts");
        Assert.IsFalse(build.Output.Contains("Stage1", StringComparison.Ordinal), "a stage ran");
        Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));
        await SshEngine.AssertTunnelEndedAsync(sshd);
    }
}
