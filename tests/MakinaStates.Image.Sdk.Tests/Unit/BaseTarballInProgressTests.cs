using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The fresh base's tarball, written beside the build: completed and the lock released, or stopped and nothing left.</summary>
[TestClass]
public sealed class BaseTarballInProgressTests
{
    private sealed class Lock : IDisposable
    {
        public bool Released { get; private set; }

        public void Dispose() => Released = true;
    }

    private static Task<DockerEngine> NoEngine(CancellationToken _) => throw new InvalidOperationException("no engine in this test");

    [TestMethod]
    public async Task Finishing_writes_the_tarball_removes_the_raw_tar_and_releases_the_lock()
    {
        var directory = Directory.CreateTempSubdirectory("msimage-fresh-").FullName;
        try
        {
            var raw = Path.Combine(directory, ".stage0.raw.test.tar");
            await File.WriteAllBytesAsync(raw, new byte[10 * 1024]);
            var tarball = Path.Combine(directory, "baseimage.tar.gz");
            var baseLock = new Lock();
            var messages = new List<string>();
            using (var fresh = BaseTarballInProgress.Start(raw, tarball, "debian", "bookworm", "build-test", baseLock, NoEngine))
            {
                // No import (ImageId empty): nothing to tag, so no engine is needed.
                Assert.AreEqual("", await fresh.FinishAsync(null!, messages.Add, CancellationToken.None));
            }
            Assert.IsTrue(File.Exists(tarball));
            Assert.IsFalse(File.Exists(raw), "the raw tar was left");
            Assert.IsTrue(baseLock.Released);
            StringAssert.Contains(messages[^1], $"wrote the base tarball {tarball}");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [TestMethod]
    public async Task Abandoned_leaves_no_tarball_no_partial_file_and_releases_the_lock()
    {
        var directory = Directory.CreateTempSubdirectory("msimage-fresh-").FullName;
        try
        {
            var raw = Path.Combine(directory, ".stage0.raw.test.tar");
            var noise = new byte[64 * 1024 * 1024];
            Random.Shared.NextBytes(noise);
            await File.WriteAllBytesAsync(raw, noise);
            var tarball = Path.Combine(directory, "baseimage.tar.xz");
            var baseLock = new Lock();
            var fresh = BaseTarballInProgress.Start(raw, tarball, "debian", "bookworm", "build-test", baseLock, NoEngine);
            fresh.Abandon();
            fresh.Dispose();
            Assert.IsTrue(baseLock.Released);
            CollectionAssert.AreEqual(Array.Empty<string>(), Directory.GetFiles(directory), "an abandoned base leaves nothing behind");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
