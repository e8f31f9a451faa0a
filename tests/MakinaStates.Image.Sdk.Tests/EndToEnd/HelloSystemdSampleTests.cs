using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The README's main job, for real: `dotnet build samples/hello-systemd` with the packed SDK against the
/// Docker engine, then the candidate is started like a user would and checked from the inside.
/// </summary>
[TestClass]
public sealed class HelloSystemdSampleTests
{
    // The sample unchanged, under a name of this run: a candidate already on the engine can neither stand in for the
    // build nor be replaced by it.
    private static readonly string Image = $"makinastates/test-hello-systemd-{Guid.NewGuid():N}"[..48];
    private static readonly string Candidate = $"{Image}:candidate";
    private static DotnetBuild? s_build;
    private static DockerClient? s_docker;
    private static string? s_container;

    [ClassInitialize]
    public static async Task BuildAndBoot(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_docker = await TestDocker.RequireEngineAsync();
        s_build = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "hello-systemd", "hello-systemd.proj"), [$"-p:MsImage={Image}"]);
        if (s_build.Succeeded)
        {
            s_container = await TestDocker.BootAsync(s_docker, Candidate, $"hello-systemd-test-{Guid.NewGuid():N}");
        }
    }

    [ClassCleanup]
    public static async Task RemoveContainerAndImages()
    {
        if (s_docker is not null)
        {
            if (s_container is not null)
            {
                await TestDocker.RemoveContainerAsync(s_docker, s_container);
            }
            await TestDocker.RemoveProjectImagesAsync(s_docker, Image);
            s_docker.Dispose();
        }
    }

    private static DotnetBuild Build => s_build ?? throw new InvalidOperationException("the sample was not built");

    private static async Task<(long ExitCode, string Output)> InCandidate(string command)
    {
        Assert.IsTrue(Build.Succeeded, Build.Output);
        Assert.IsNotNull(s_container);
        return await TestDocker.ExecAsync(s_docker!, s_container, command);
    }

    [TestMethod]
    public async Task Build_succeeds_and_returns_the_candidate_tag()
    {
        Assert.IsTrue(Build.Succeeded, Build.Output);
        StringAssert.Contains(Build.Output, $"Check image tag: {Candidate}");
        var image = await s_docker!.Images.InspectImageAsync(Candidate);
        CollectionAssert.AreEqual(new[] { "/sbin/init" }, image.Config!.Cmd!.ToArray());
        Assert.AreEqual("SIGRTMIN+3", image.Config.StopSignal);
        Assert.IsFalse(image.Config.Env!.Any(e => e.StartsWith("MS_", StringComparison.Ordinal)), string.Join(" ", image.Config.Env!));
    }

    [TestMethod]
    public async Task Candidate_boots_with_systemd_as_pid_1()
    {
        var (_, comm) = await InCandidate("cat /proc/1/comm");
        Assert.AreEqual("systemd", comm.Trim());
        var (_, state) = await InCandidate("systemctl is-system-running --wait");
        Assert.IsTrue(state.Trim() is "running" or "degraded", state);
    }

    [TestMethod]
    public async Task Injected_files_are_in_place_with_their_content()
    {
        var (code, page) = await InCandidate("cat /srv/projects/hello/www/index.html");
        Assert.AreEqual(0, code, page);
        Assert.AreEqual(File.ReadAllText(Path.Combine(Repository.Root, "samples/hello-systemd/site/index.html")).TrimEnd(), page.TrimEnd());
        var (_, unit) = await InCandidate("cat /etc/systemd/system/hello-web.socket");
        StringAssert.Contains(unit, "ListenStream=8080");
        var (_, mode) = await InCandidate("stat -c %a /usr/local/bin/hello-web");
        Assert.AreEqual("755", mode.Trim());
        var (docker, _) = await InCandidate("test -e /docker");
        Assert.AreNotEqual(0L, docker, "/docker (build-time scripts) must not be in the image");
    }

    [TestMethod]
    public async Task Sample_service_answers_on_its_port()
    {
        var (code, response) = await InCandidate(
            "exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
        Assert.AreEqual(0, code, response);
        StringAssert.StartsWith(response, "HTTP/1.0 200 OK");
        StringAssert.Contains(response, "Hello from systemd");
    }

    [TestMethod]
    public async Task No_stage_container_remains()
    {
        Assert.IsTrue(Build.Succeeded, Build.Output);
        await TestDocker.AssertNoStageContainerAsync(s_docker!, Image);
    }
}
