using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>"running systemd or not": an MsCommand that is not an init builds an image whose Cmd it is.</summary>
[TestClass]
public sealed class InitlessImageTests
{
    [TestMethod]
    public async Task A_command_that_is_not_an_init_builds_without_systemd_and_is_the_images_cmd()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-initless-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("injected_volumes/srv/app/shared.txt", "x\n");
        HostProcess.Run("setfacl", "-m", "u:4242:rw", Path.Combine(project.Directory, "injected_volumes/srv/app/shared.txt"));
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            echo "stage3 PID 1 is $(cat /proc/1/comm), MS_INIT=$MS_INIT"
            """, executable: true);
        string? container = null;
        try
        {
            var build = await project.BuildAsync("-p:MsCommand=/usr/bin/sleep infinity");
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "MsInit: none");
            StringAssert.Contains(build.Output, "stage3 PID 1 is sh, MS_INIT=none", "PID 1 is the keep-alive, not systemd");
            Assert.IsFalse(build.Output.Contains("systemd is running", StringComparison.Ordinal), "nothing waits for systemd");
            // No init restores ACLs at boot, but they are in the candidate's layer: no warning, and the file has its ACL.
            Assert.IsFalse(build.Output.Contains("MSI3005", StringComparison.Ordinal), build.Output);
            StringAssert.Contains(await TestDocker.RunInImageAsync(docker, $"{image}:candidate", "getfacl -n /srv/app/shared.txt"), "user:4242:rw-");

            var config = (await docker.Images.InspectImageAsync($"{image}:candidate")).Config!;
            CollectionAssert.AreEqual(new[] { "/usr/bin/sleep", "infinity" }, config.Cmd!.ToArray());
            Assert.AreEqual("SIGTERM", config.StopSignal);

            // Run as any image: the command is PID 1.
            container = (await docker.Containers.CreateContainerAsync(new CreateContainerParameters { Image = $"{image}:candidate" })).ID;
            await docker.Containers.StartContainerAsync(container, new ContainerStartParameters());
            Assert.AreEqual("sleep", (await TestDocker.ExecAsync(docker, container, "cat /proc/1/comm")).Output.Trim());
            // Gone before the next build, so that build's prune can remove the candidate it replaces.
            await TestDocker.RemoveContainerAsync(docker, container);
            container = null;

            // With the layers as committed (MsRewriteLayers=false) the ACL is lost, and nothing restores it: a warning says so.
            var asCommitted = await project.BuildAsync("-p:MsCommand=/usr/bin/sleep infinity", "-p:MsRewriteLayers=false");
            Assert.IsTrue(asCommitted.Succeeded, asCommitted.Output);
            StringAssert.Contains(asCommitted.Output, "warning MSI3005");
            StringAssert.Contains(asCommitted.Output, "/srv/app/shared.txt");
            Assert.IsFalse((await TestDocker.RunInImageAsync(docker, $"{image}:candidate", "getfacl -n /srv/app/shared.txt")).Contains("user:4242", StringComparison.Ordinal));
        }
        finally
        {
            if (container is not null) await TestDocker.RemoveContainerAsync(docker, container);
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
