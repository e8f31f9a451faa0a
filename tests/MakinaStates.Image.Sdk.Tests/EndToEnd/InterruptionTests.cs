using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>Ctrl+C, SIGTERM and kill -9 of a real `dotnet build` during stage3.sh leave no container behind.</summary>
[TestClass]
public sealed class InterruptionTests
{
    private const string SleepingStage3 = "#!/bin/bash\necho 'stage3 is sleeping'\nsleep 120\n";

    [TestMethod]
    [DataRow(Signum.SIGINT)]
    [DataRow(Signum.SIGTERM)]
    public async Task Signal_during_stage3_removes_the_build_containers_within_10_seconds(Signum signal)
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-signal-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", SleepingStage3, executable: true);
        try
        {
            await using var build = DotnetBuild.Running.Start(project.ProjectFile);
            await build.WaitForOutputAsync("stage3 is sleeping", TimeSpan.FromMinutes(5));
            Assert.AreEqual(1, (await TestDocker.StageContainersAsync(docker, image)).Count);

            Assert.AreEqual(0, Syscall.kill(build.Process.Id, signal));
            var signalled = DateTime.UtcNow;
            while ((await TestDocker.StageContainersAsync(docker, image)).Count > 0)
            {
                Assert.IsTrue(DateTime.UtcNow - signalled < TimeSpan.FromSeconds(10), $"stage containers of {image} still exist 10 s after {signal}");
                await Task.Delay(200);
            }
            var result = await build.CompleteAsync(TimeSpan.FromSeconds(60));
            Assert.AreNotEqual(0, result.ExitCode, "an interrupted build must not succeed");
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{image}:candidate"), "an interrupted build tagged a candidate");
        }
        finally
        {
            await TestDocker.RemoveImageAsync(docker, $"{image}-stage1:latest");
        }
    }

    [TestMethod]
    public async Task Container_of_a_killed_build_is_reaped_by_the_next_builds_stage0()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-kill9-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", SleepingStage3, executable: true);
        try
        {
            string buildId;
            await using (var build = DotnetBuild.Running.Start(project.ProjectFile))
            {
                await build.WaitForOutputAsync("stage3 is sleeping", TimeSpan.FromMinutes(5));
                buildId = DotnetBuild.FindBuildId(build.Output) ?? throw new AssertFailedException($"no build id printed:\n{build.Output}");
                Assert.AreEqual(0, Syscall.kill(build.Process.Id, Signum.SIGKILL));
                await build.Process.WaitForExitAsync();
            }
            var orphans = await TestDocker.ContainersWithLabelAsync(docker, $"io.makinastates.build-id={buildId}");
            Assert.AreEqual(1, orphans.Count, "kill -9 leaves the container (nothing can run in a killed process)");

            // Any next build reaps it in Stage0, here one that stops right after (an invalid MsDockerArgs fails later).
            project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\ntrue\n", executable: true);
            var next = await project.BuildAsync();
            Assert.IsTrue(next.Succeeded, next.Output);
            StringAssert.Contains(next.Output, $"build {buildId}");
            Assert.AreEqual(0, (await TestDocker.ContainersWithLabelAsync(docker, $"io.makinastates.build-id={buildId}")).Count, "the orphan was not reaped");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
