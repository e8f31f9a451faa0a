using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The base tarball's finisher (issue 28, item 5): a cold build imports the raw tar and ends without waiting for xz;
/// the finisher writes the .tar.xz after the build, holding its lock until the rename. A second build that needs the
/// base waits for it and then uses the import of the raw tar; a killed finisher leaves no tarball under the final name,
/// and the next build finishes it from the raw tar it kept. xz is gated (BaseFinishers.GateXz) so the finisher is
/// still running when the test needs it to be.
/// </summary>
[TestClass]
public sealed class BaseTarballFinisherTests
{
    private const string Repository = "makinastates/base-debian-bookworm";
    private const string TarballName = "baseimage-debian-bookworm.tar.xz";

    /// <summary>A cold build in a data dir of its own, its finisher's xz held by the gate: the build is over, its
    /// finisher is not, and holds its lock.</summary>
    private static async Task<DotnetBuild> ColdBuildWithHeldFinisherAsync(ImageProject project, string data, string tarball, BaseFinishers.GatedXz xz)
    {
        var cold = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={data}"], xz.Environment);
        Assert.IsTrue(cold.Succeeded, cold.Output);
        Assert.IsTrue(BaseFinishers.IsRunning(data, tarball), "no finisher holds the lock after the build");
        return cold;
    }

    [TestMethod]
    public async Task The_finisher_outlives_the_cold_build_and_a_second_build_waits_for_it_then_uses_the_import()
    {
        Support.Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-finish-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var data = Path.Combine(project.Directory, "data");
        var tarball = Path.Combine(data, TarballName);
        var xz = BaseFinishers.GateXz(project.Directory);
        DotnetBuild? cold = null;
        try
        {
            cold = await ColdBuildWithHeldFinisherAsync(project, data, tarball, xz);
            StringAssert.Contains(cold.Output, "is still being written beside the build", "the build waited for the compression");
            var finisher = BaseFinishers.Pid(data, tarball);
            Assert.IsTrue(Directory.Exists($"/proc/{finisher}"), $"the finisher {finisher} did not outlive the build");
            Assert.IsFalse(File.Exists(tarball), "a tarball is under the final name before the finisher renamed it");
            Assert.IsTrue(File.Exists(Path.Combine(data, $".stage0.raw.{cold.BuildId}.tar")), "the raw tar went before the tarball was written");
            var buildTag = $"{Repository}:build-{cold.BuildId}";
            var importId = await TestDocker.ImageIdAsync(docker, buildTag);
            Assert.IsNotNull(importId, "the raw tar's import is not there under its build-private tag");

            // A second build that needs the base waits for the finisher (and says so), then uses the import.
            await using (var second = DotnetBuild.Running.Start(project.ProjectFile, [$"-p:MsDataDir={data}", "-p:MsForceRebuild=true"]))
            {
                await second.WaitForOutputAsync("to be finished (the finisher an earlier build started writes it", TimeSpan.FromMinutes(3));
                Assert.IsFalse(File.Exists(tarball));
                xz.Open();
                var done = await second.CompleteAsync(TimeSpan.FromMinutes(10));
                Assert.IsTrue(done.Succeeded, done.Output);
                Assert.IsTrue(File.Exists(tarball), $"the tarball was not written:\n{BaseFinishers.Log(data, tarball)}");
                var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(tarball)))[..16];
                StringAssert.Contains(done.Output, $"Base image {Repository}:{hash} already imported.");
                Assert.IsFalse(done.Output.Contains("Importing", StringComparison.Ordinal), "the base was imported a second time:\n" + done.Output);
                StringAssert.Contains(done.Output, "(reused)", "stage1 was made again on another base");
                Assert.AreEqual(importId, await TestDocker.ImageIdAsync(docker, $"{Repository}:{hash}"), "the import of the raw tar is not tagged with the tarball's hash");
                Assert.IsNull(await TestDocker.ImageIdAsync(docker, buildTag), "the build-private tag was left");
            }
            HostProcess.Run("xz", "-t", tarball);
            Assert.IsFalse(BaseFinishers.IsRunning(data, tarball));
            var left = Directory.GetFileSystemEntries(data).Select(e => Path.GetFileName(e)!).Where(e => !(e.StartsWith(".stage0.", StringComparison.Ordinal) && Directory.Exists(Path.Combine(data, e)))).ToArray();
            CollectionAssert.AreEquivalent(new[] { TarballName, TarballName + ".imported", TarballName + ".origin", "locks" }, left, string.Join(", ", left));
        }
        finally
        {
            xz.Open();
            await TestDocker.RemoveBaseImportsOfAsync(docker, data);
            await TestDocker.RemoveProjectImagesAsync(docker, image);
            await TestDocker.RemoveImageAsync(docker, $"{Repository}:build-{cold?.BuildId}");
        }
    }

    [TestMethod]
    public async Task A_killed_finisher_leaves_no_tarball_and_the_next_build_finishes_it_from_the_raw_tar()
    {
        Support.Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-finkill-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var data = Path.Combine(project.Directory, "data");
        var tarball = Path.Combine(data, TarballName);
        var xz = BaseFinishers.GateXz(project.Directory);
        DotnetBuild? cold = null;
        try
        {
            cold = await ColdBuildWithHeldFinisherAsync(project, data, tarball, xz);
            var raw = Path.Combine(data, $".stage0.raw.{cold.BuildId}.tar");
            // Killed (its whole session: xz too) while it writes: the kernel releases its lock.
            var finisher = BaseFinishers.Pid(data, tarball);
            Assert.AreEqual(0, Mono.Unix.Native.Syscall.kill(-finisher, Mono.Unix.Native.Signum.SIGKILL), "the finisher is not its own process group");
            await BaseFinishers.WaitAsync(data, tarball, TimeSpan.FromSeconds(30));
            Assert.IsFalse(File.Exists(tarball), "a killed finisher left a tarball under the final name");
            Assert.IsTrue(File.Exists(raw), "the raw tar went before the tarball was written");
            Assert.IsTrue(File.Exists($"{tarball}.{finisher}.tmp"), "the finisher's partial tarball is not where this test expects it");

            // The next build finishes the tarball from the raw tar (no debootstrap), with the import of it.
            var next = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={data}", "-p:MsForceRebuild=true"]);
            Assert.IsTrue(next.Succeeded, next.Output);
            StringAssert.Contains(next.Output, $"finishing the base tarball {tarball} from the raw tar {raw}");
            Assert.IsFalse(next.Output.Contains("creating the base tarball", StringComparison.Ordinal), "stage0.sh ran again:\n" + next.Output);
            StringAssert.Contains(next.Output, $"Base image {Repository}:build-{cold.BuildId} already imported.");
            await BaseFinishers.WaitAsync(data, tarball, TimeSpan.FromMinutes(3));
            HostProcess.Run("xz", "-t", tarball);
            var left = Directory.GetFileSystemEntries(data).Select(e => Path.GetFileName(e)!).Where(e => !(e.StartsWith(".stage0.", StringComparison.Ordinal) && Directory.Exists(Path.Combine(data, e)))).ToArray();
            CollectionAssert.IsSubsetOf(new[] { TarballName, TarballName + ".origin", "locks" }, left, string.Join(", ", left));
            CollectionAssert.IsSubsetOf(left, new[] { TarballName, TarballName + ".imported", TarballName + ".origin", "locks" },
                $"the raw tar or the dead finisher's partial tarball was left: {string.Join(", ", left)}");

            // And the build after finds that import by the tarball's hash: no second import.
            var after = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={data}", "-p:MsForceRebuild=true"]);
            Assert.IsTrue(after.Succeeded, after.Output);
            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(tarball)))[..16];
            StringAssert.Contains(after.Output, $"Base image {Repository}:{hash} already imported.");
            Assert.IsFalse(after.Output.Contains("Importing", StringComparison.Ordinal), "the base was imported a second time:\n" + after.Output);
        }
        finally
        {
            xz.Open();
            await TestDocker.RemoveBaseImportsOfAsync(docker, data);
            await TestDocker.RemoveProjectImagesAsync(docker, image);
            await TestDocker.RemoveImageAsync(docker, $"{Repository}:build-{cold?.BuildId}");
        }
    }
}
