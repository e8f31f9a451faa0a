using MakinaStates.Image.Sdk.Concurrency;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>Temp name, then rename: a reader sees the old file or the new one, never half, and no temporary stays.</summary>
[TestClass]
public sealed class AtomicFileTests
{
    [TestMethod]
    public async Task A_failed_write_leaves_the_old_file_and_no_temporary()
    {
        var directory = Directory.CreateTempSubdirectory("atomic-").FullName;
        try
        {
            var path = Path.Combine(directory, "sub", "record");
            AtomicFile.WriteAllText(path, "old\n");
            Assert.AreEqual("old\n", File.ReadAllText(path), "written, its folder made");

            var failure = await Assert.ThrowsExactlyAsync<IOException>(() => AtomicFile.WriteAsync<int>(path, async temporary =>
            {
                await File.WriteAllTextAsync(temporary, "half");
                Assert.AreEqual("old\n", File.ReadAllText(path), "while being written, the real name still has the old content");
                throw new IOException("disk full");
            }));
            Assert.AreEqual("disk full", failure.Message);
            Assert.AreEqual("old\n", File.ReadAllText(path), "a failed write leaves the old file");
            CollectionAssert.AreEqual(new[] { "record" }, Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName).ToArray(), "no temporary left");

            Assert.AreEqual(42, await AtomicFile.WriteAsync(path, async temporary =>
            {
                await File.WriteAllTextAsync(temporary, "new\n");
                return 42;
            }));
            Assert.AreEqual("new\n", File.ReadAllText(path), "replaced");
            CollectionAssert.AreEqual(new[] { "record" }, Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName).ToArray(), "no temporary left");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [TestMethod]
    public void Temporaries_are_told_apart_from_the_files_written()
    {
        Assert.IsTrue(AtomicFile.IsTemporary(Path.GetFileName(AtomicFile.TemporaryPath("/data/baseimage-debian-bookworm.tar.xz"))));
        StringAssert.StartsWith(AtomicFile.TemporaryPath("/data/x.sh"), "/data/x.sh.");
        Assert.IsFalse(AtomicFile.IsTemporary("stage1.sh"));
        Assert.IsFalse(AtomicFile.IsTemporary("notes.tmp"), "a user's own .tmp file is not ours");
    }
}
