using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The cold path: the fresh base is imported from stage0.sh's raw tar while its .tar.xz is written beside it (by the
/// finisher, which may outlive the build: BaseTarballFinisherTests); the import is tagged with the tarball's hash (by
/// the build when the tarball is there at its end, else by the next build that needs the base), so the next build reuses
/// it instead of importing again, and finds the candidate up to date.
/// </summary>
[TestClass]
public sealed class ColdBuildTests
{
    [TestMethod]
    public async Task Cold_build_imports_the_fresh_base_once_and_the_next_build_reuses_that_import()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-cold-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        // Its own data dir: a real debootstrap, and no base tarball of other builds is touched.
        var data = Path.Combine(project.Directory, "data");
        var tarball = Path.Combine(data, "baseimage-debian-bookworm.tar.xz");
        string? baseReference = null;
        DotnetBuild? cold = null;
        try
        {
            cold = await project.BuildAsync($"-p:MsDataDir={data}");
            Assert.IsTrue(cold.Succeeded, cold.Output);
            Assert.AreEqual(1, Regex.Matches(cold.Output, "Importing the fresh base").Count, cold.Output);
            Assert.IsFalse(cold.Output.Contains($"Importing {tarball}", StringComparison.Ordinal), "the tarball was imported again after its raw tar");
            await BaseFinishers.WaitAsync(data, tarball, TimeSpan.FromMinutes(3));
            Assert.IsTrue(File.Exists(tarball), $"the base tarball was not written:\n{BaseFinishers.Log(data, tarball)}");
            // stage0.sh removes its debootstrap rootfs (.stage0.XXXXXX) in the background so the import starts at once:
            // on a loaded machine that removal may outlast the build by seconds, but it must end.
            var left = await EntriesOnceRootfsIsRemovedAsync(data);
            // .imported is written when the import is tagged: by this build if the tarball was there at its end.
            CollectionAssert.IsSubsetOf(new[] { "baseimage-debian-bookworm.tar.xz", "baseimage-debian-bookworm.tar.xz.origin", "locks" }, left);
            CollectionAssert.IsSubsetOf(left, new[] { "baseimage-debian-bookworm.tar.xz", "baseimage-debian-bookworm.tar.xz.imported", "baseimage-debian-bookworm.tar.xz.origin", "locks" },
                $"raw tar, partial files or the rootfs were left: {string.Join(", ", left)}");
            HostProcess.Run("xz", "-t", tarball); // a complete xz file

            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(tarball)))[..16];
            baseReference = $"makinastates/base-debian-bookworm:{hash}";
            var buildTag = $"makinastates/base-debian-bookworm:build-{cold.BuildId}";
            // Tagged by the build when the finisher was done by its end; else the next build that needs the base does.
            var baseId = await TestDocker.ImageIdAsync(docker, baseReference) ?? await TestDocker.ImageIdAsync(docker, buildTag);
            Assert.IsNotNull(baseId, $"the fresh base's import is tagged neither {baseReference} nor {buildTag}");

            // The cold build keyed its candidate on a base that did not exist yet: with the tarball written, the next
            // build is a no-op all the same.
            var noOp = await project.BuildAsync($"-p:MsDataDir={data}");
            Assert.IsTrue(noOp.Succeeded, noOp.Output);
            StringAssert.Contains(noOp.Output, "is up to date (inputs key", "the build after a cold build ran the stages again");

            var next = await project.BuildAsync($"-p:MsDataDir={data}", "-p:MsForceRebuild=true");
            Assert.IsTrue(next.Succeeded, next.Output);
            StringAssert.Contains(next.Output, $"Base image {baseReference} already imported.");
            Assert.IsFalse(next.Output.Contains("Importing", StringComparison.Ordinal), next.Output);
            StringAssert.Contains(next.Output, "(reused)");
            Assert.AreEqual(baseId, await TestDocker.ImageIdAsync(docker, baseReference), $"the fresh base's import is not tagged {baseReference}");
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, buildTag), "the build-private tag was left");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
            await TestDocker.RemoveImageAsync(docker, $"makinastates/base-debian-bookworm:build-{cold?.BuildId}");
            if (baseReference is not null)
            {
                await TestDocker.RemoveImageAsync(docker, baseReference);
            }
        }
    }

    private static async Task<string[]> EntriesOnceRootfsIsRemovedAsync(string data)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var entries = Directory.GetFileSystemEntries(data).Select(e => Path.GetFileName(e)!).ToArray();
            if (!entries.Any(e => e.StartsWith(".stage0.", StringComparison.Ordinal) && Directory.Exists(Path.Combine(data, e))) || DateTime.UtcNow > deadline)
            {
                return entries;
            }
            await Task.Delay(250);
        }
    }
}
