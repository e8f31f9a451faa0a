using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// A build with nothing to do asks the engine one thing, the candidate, with the engine's identity as the last build
/// read it; it reads the identity again when the engine's socket is another one, and it takes the whole path (which
/// removes what a killed build left) when the last build of the project did not end.
/// </summary>
[TestClass]
public sealed class NoOpBuildTests
{
    private static string UniqueImage(string name) => $"makinastates/test-noop-{name}-{Guid.NewGuid():N}"[..40];

    private static bool IsUpToDate(DotnetBuild build) => build.Output.Contains("is up to date (inputs key", StringComparison.Ordinal);

    [TestMethod]
    public async Task A_no_op_build_makes_one_engine_call_and_reads_the_identity_again_from_another_socket()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("calls");
        using var project = new ImageProject(image);
        using var proxy = new CountingEngineProxy();
        string[] arguments = [$"-p:MsDockerHost={proxy.Host}"];
        try
        {
            var first = await project.BuildAsync(arguments);
            Assert.IsTrue(first.Succeeded, first.Output);
            Assert.IsFalse(IsUpToDate(first), first.Output);

            proxy.Clear();
            var noOp = await project.BuildAsync(arguments);
            Assert.IsTrue(noOp.Succeeded, noOp.Output);
            Assert.IsTrue(IsUpToDate(noOp), noOp.Output);
            CollectionAssert.AreEqual(new[] { $"GET /images/{Uri.EscapeDataString($"{image}:candidate")}/json HTTP/1.1" }, proxy.Requests.ToArray(),
                "the no-op build's engine calls:\n" + string.Join("\n", proxy.Requests) + "\n" + noOp.Output);
            StringAssert.Contains(noOp.Output, "(as the last build read it: the same socket)");

            // The engine made its socket again (a restart, an upgrade): its identity is read again.
            proxy.MakeSocketAgain();
            proxy.Clear();
            var again = await project.BuildAsync(arguments);
            Assert.IsTrue(again.Succeeded, again.Output);
            Assert.IsTrue(IsUpToDate(again), again.Output);
            Assert.IsFalse(again.Output.Contains("as the last build read it", StringComparison.Ordinal), again.Output);
            Assert.IsTrue(proxy.Requests.Any(r => r.Contains("/info ", StringComparison.Ordinal)), "no /info after the socket changed:\n" + string.Join("\n", proxy.Requests));

            // And the next one is down to one call again.
            proxy.Clear();
            var last = await project.BuildAsync(arguments);
            Assert.IsTrue(IsUpToDate(last), last.Output);
            Assert.AreEqual(1, proxy.Requests.Count, string.Join("\n", proxy.Requests));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task A_build_killed_after_the_candidate_was_made_is_cleaned_up_by_the_next_build_even_a_no_op()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("kill");
        using var project = new ImageProject(image);
        const string Quick = "#!/bin/bash\ntrue\n";
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", Quick, executable: true);
        try
        {
            var first = await project.BuildAsync();
            Assert.IsTrue(first.Succeeded, first.Output);
            var candidate = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");

            // A second build, killed in its stage3: its container stays on the engine.
            project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho 'this stage3 is sleeping'\nsleep 120\n", executable: true);
            await using (var killed = DotnetBuild.Running.Start(project.ProjectFile))
            {
                await killed.WaitForOutputAsync("this stage3 is sleeping", TimeSpan.FromMinutes(5));
                Assert.AreEqual(0, Syscall.kill(killed.Process.Id, Signum.SIGKILL));
                await killed.Process.WaitForExitAsync();
            }
            Assert.AreEqual(1, (await TestDocker.ContainersWithLabelAsync(docker, $"io.makinastates.image={image}")).Count, "kill -9 leaves the stage container");

            // The inputs are those of the candidate again: nothing to build, and what the killed build left goes.
            project.Write("image_rootfs/bootstrap_scripts/stage3.sh", Quick, executable: true);
            var next = await project.BuildAsync();
            Assert.IsTrue(next.Succeeded, next.Output);
            Assert.IsTrue(IsUpToDate(next), next.Output);
            Assert.AreEqual(candidate, await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));
            StringAssert.Contains(next.Output, "left by a build whose process is gone");
            Assert.AreEqual(0, (await TestDocker.ContainersWithLabelAsync(docker, $"io.makinastates.image={image}")).Count);

            // Cleaned up once: the build after it is a one-call no-op again.
            var after = await project.BuildAsync();
            Assert.IsTrue(IsUpToDate(after), after.Output);
            StringAssert.Contains(after.Output, "(as the last build read it: the same socket)");
        }
        finally
        {
            foreach (var left in await TestDocker.ContainersWithLabelAsync(docker, $"io.makinastates.image={image}"))
            {
                await docker.Containers.RemoveContainerAsync(left.ID, new() { Force = true });
            }
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
