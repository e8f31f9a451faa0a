using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// What every kind of engine must do, run against each one the tests start (<see cref="CgroupV2EngineTests"/>,
/// <see cref="PodmanEngineTests"/>, and each over SSH: <see cref="SshCgroupV2EngineTests"/>, <see cref="SshPodmanEngineTests"/>): the sample builds, boots with systemd as PID 1 and serves its page; a failing
/// stage3 and a Ctrl+C leave no container, on that engine or on the main one.
/// </summary>
public abstract class EngineKindChecks
{
    /// <summary>The sample built on one engine, and its candidate booted there.</summary>
    protected sealed record SampleRun(string Host, DockerClient Engine, DockerClient Main, string Image, DotnetBuild Build, string? Container) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (Container is not null) await TestDocker.RemoveContainerAsync(Engine, Container);
            await TestDocker.RemoveProjectImagesAsync(Engine, Image);
        }

        /// <summary>A class's cleanup: the sample's container and images, then both clients (null: nothing was built).</summary>
        public static async Task RemoveAsync(SampleRun? sample)
        {
            if (sample is not null)
            {
                await sample.DisposeAsync();
                sample.Engine.Dispose();
                sample.Main.Dispose();
            }
        }
    }

    protected abstract SampleRun Sample { get; }

    /// <summary>What Stage2 logs as systemd's cgroup on this engine.</summary>
    protected abstract string ExpectedCgroupAccess { get; }

    /// <summary>Builds samples/hello-systemd under a unique name on the engine at <paramref name="host"/> and boots it there.</summary>
    protected static async Task<SampleRun> BuildSampleAsync(string host, DockerClient engine, string kind, params string[] extraArguments)
    {
        Repository.RequirePackedSdk();
        var main = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-{kind}-sample-{Guid.NewGuid():N}"[..44];
        var build = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "hello-systemd", "hello-systemd.proj"),
            [$"-p:MsDockerHost={host}", $"-p:MsImage={image}", .. extraArguments]);
        try
        {
            var container = build.Succeeded ? await TestDocker.BootAsync(engine, $"{image}:candidate", $"{kind}-sample-test-{Guid.NewGuid():N}") : null;
            return new SampleRun(host, engine, main, image, build, container);
        }
        catch
        {
            await new SampleRun(host, engine, main, image, build, null).DisposeAsync();
            throw;
        }
    }

    protected async Task<string> InSample(string command)
    {
        Assert.IsTrue(Sample.Build.Succeeded, Sample.Build.Output);
        var (code, output) = await TestDocker.ExecAsync(Sample.Engine, Sample.Container!, command);
        Assert.AreEqual(0L, code, $"{command}: {output}");
        return output.Trim();
    }

    /// <summary>Extra build arguments every build on this engine needs (e.g. a network mode).</summary>
    protected virtual string[] BuildArguments => [];

    [TestMethod]
    public async Task The_sample_builds_boots_with_systemd_as_pid_1_and_serves_its_page()
    {
        StringAssert.Contains(Sample.Build.Output, $"Check image tag: {Sample.Image}:candidate");
        StringAssert.Contains(Sample.Build.Output, $"systemd's cgroup: {ExpectedCgroupAccess}");
        Assert.AreEqual("systemd", await InSample("cat /proc/1/comm"));
        var state = await InSample("systemctl is-system-running --wait || true");
        Assert.IsTrue(state is "running" or "degraded", state);
        var response = await InSample("exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
        StringAssert.StartsWith(response, "HTTP/1.0 200 OK");
        StringAssert.Contains(response, "Hello from systemd");
        Assert.IsNull(await TestDocker.ImageIdAsync(Sample.Main, $"{Sample.Image}:candidate"), "the build went to the main engine");
        Assert.IsNotNull(Sample.Build.BuildId, "Stage0 did not print the build id");
        var left = await TestDocker.ContainersWithLabelAsync(Sample.Engine, $"io.makinastates.build-id={Sample.Build.BuildId}");
        Assert.AreEqual(0, left.Count, "a stage container of the sample's build was left");
        await AssertConnectionEndedAsync();
    }

    [TestMethod]
    public async Task A_failing_stage3_leaves_no_container_on_either_engine()
    {
        var image = $"makinastates/test-engine-fails-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho 'this stage3 fails now'\nexit 9\n", executable: true);
        try
        {
            var build = await project.BuildAsync([$"-p:MsDockerHost={Sample.Host}", .. BuildArguments]);
            Assert.IsFalse(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "error MSI3001");
            StringAssert.Contains(build.Output, "this stage3 fails now");
            await AssertNoContainerOfAsync(image);
            Assert.IsNull(await TestDocker.ImageIdAsync(Sample.Engine, $"{image}:candidate"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(Sample.Engine, image);
        }
    }

    [TestMethod]
    public async Task Ctrl_c_during_stage3_leaves_no_container()
    {
        var image = $"makinastates/test-engine-sigint-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho 'this stage3 is sleeping'\nsleep 120\n", executable: true);
        try
        {
            await using var build = DotnetBuild.Running.Start(project.ProjectFile, [$"-p:MsDockerHost={Sample.Host}", .. BuildArguments]);
            await build.WaitForOutputAsync("this stage3 is sleeping", TimeSpan.FromMinutes(5));
            Assert.AreEqual(1, (await ContainersOfAsync(Sample.Engine, image)).Count, "the stage container runs on this engine");
            Assert.AreEqual(0, Syscall.kill(build.Process.Id, Signum.SIGINT));
            var result = await build.CompleteAsync(TimeSpan.FromSeconds(60));
            Assert.AreNotEqual(0, result.ExitCode, result.Output);
            await AssertNoContainerOfAsync(image);
            Assert.IsNull(await TestDocker.ImageIdAsync(Sample.Engine, $"{image}:candidate"), "an interrupted build tagged a candidate");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(Sample.Engine, image);
        }
    }

    [TestMethod]
    public async Task The_container_of_a_killed_build_is_reaped_by_the_next_build()
    {
        var image = $"makinastates/test-engine-kill9-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho 'this stage3 is sleeping'\nsleep 120\n", executable: true);
        try
        {
            await using (var build = DotnetBuild.Running.Start(project.ProjectFile, [$"-p:MsDockerHost={Sample.Host}", .. BuildArguments]))
            {
                await build.WaitForOutputAsync("this stage3 is sleeping", TimeSpan.FromMinutes(5));
                Assert.AreEqual(0, Syscall.kill(build.Process.Id, Signum.SIGKILL));
                await build.Process.WaitForExitAsync();
            }
            Assert.AreEqual(1, (await ContainersOfAsync(Sample.Engine, image)).Count, "kill -9 leaves the container (nothing runs in a killed process)");
            project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\ntrue\n", executable: true);
            var next = await project.BuildAsync([$"-p:MsDockerHost={Sample.Host}", .. BuildArguments]);
            Assert.IsTrue(next.Succeeded, next.Output);
            StringAssert.Contains(next.Output, "left by a build whose process is gone");
            await AssertNoContainerOfAsync(image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(Sample.Engine, image);
        }
    }

    /// <summary>By the image label, which every stage container carries whether or not a build id was printed.</summary>
    protected static Task<IList<Docker.DotNet.Models.ContainerListResponse>> ContainersOfAsync(DockerClient engine, string image) =>
        TestDocker.ContainersWithLabelAsync(engine, $"io.makinastates.image={image}");

    protected async Task AssertNoContainerOfAsync(string image)
    {
        foreach (var (name, engine) in new[] { ("this", Sample.Engine), ("main", Sample.Main) })
        {
            var left = await ContainersOfAsync(engine, image);
            Assert.AreEqual(0, left.Count, $"{name} engine: {string.Join(", ", left.SelectMany(c => c.Names))}");
        }
        await AssertConnectionEndedAsync();
    }

    /// <summary>What reaching this engine started must have ended with the build (an SSH tunnel); nothing by default.</summary>
    protected virtual Task AssertConnectionEndedAsync() => Task.CompletedTask;
}
