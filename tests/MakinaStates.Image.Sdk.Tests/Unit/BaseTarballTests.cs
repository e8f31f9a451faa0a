using System.Formats.Tar;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The base tarball written from stage0.sh's raw tar, and the check that tells a corrupt tarball (MSI1002) from an engine failure (MSI1008).</summary>
[TestClass]
public sealed class BaseTarballTests
{
    private static string MakeRawTar(string directory)
    {
        var raw = Path.Combine(directory, "raw.tar");
        using var file = File.Create(raw);
        using var writer = new TarWriter(file, TarEntryFormat.Pax);
        for (var i = 0; i < 50; i++)
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, $"etc/file{i}") { DataStream = new MemoryStream(new byte[20_000 + i]) };
            writer.WriteEntry(entry);
        }
        return raw;
    }

    [TestMethod]
    [DataRow("baseimage.tar.xz")]
    [DataRow("baseimage.tar.gz")]
    [DataRow("baseimage.tar")]
    public async Task Written_from_the_raw_tar_atomically_reads_through_and_its_truncation_does_not(string name)
    {
        var directory = Directory.CreateTempSubdirectory("msimage-tarball-").FullName;
        try
        {
            Assert.IsTrue(BaseTarball.CanWrite(name), "xz, gzip and tar are written on this host (.ci/setup installs xz-utils)");
            var raw = MakeRawTar(directory);
            var tarball = Path.Combine(directory, name);
            string? seenBeforeRename = null;
            var hash = await BaseTarball.WriteFromRawAsync(raw, tarball, sha256 => seenBeforeRename = File.Exists(tarball) ? "after" : sha256, CancellationToken.None);
            Assert.AreEqual(await BaseTarball.Sha256Async(tarball, CancellationToken.None), hash);
            Assert.AreEqual(hash, seenBeforeRename, "the hash is given before the rename");
            Assert.AreEqual(64, hash.Length);
            CollectionAssert.AreEquivalent(new[] { "raw.tar", name }, Directory.GetFiles(directory).Select(Path.GetFileName).ToArray(), "no partial file is left");
            Assert.IsTrue(await BaseTarball.IsReadableAsync(tarball, CancellationToken.None) == true);

            var bytes = await File.ReadAllBytesAsync(tarball);
            await File.WriteAllBytesAsync(tarball, bytes[..(bytes.Length / 2)]);
            Assert.IsTrue(await BaseTarball.IsReadableAsync(tarball, CancellationToken.None) == false, "a truncated tarball reads as corrupt");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [TestMethod]
    public async Task Compressed_garbage_is_not_readable_and_an_unknown_name_cannot_be_told()
    {
        var directory = Directory.CreateTempSubdirectory("msimage-tarball-").FullName;
        try
        {
            var garbage = Path.Combine(directory, "garbage.tar");
            await File.WriteAllBytesAsync(garbage, Enumerable.Range(0, 4096).Select(i => (byte)(i * 7)).ToArray());
            var gz = Path.Combine(directory, "garbage.tar.gz");
            Assert.AreEqual(64, (await BaseTarball.WriteFromRawAsync(garbage, gz, beforeRename: null, CancellationToken.None)).Length);
            Assert.IsTrue(await BaseTarball.IsReadableAsync(gz, CancellationToken.None) == false, "valid gzip around a non-tar");
            Assert.IsNull(await BaseTarball.IsReadableAsync(Path.Combine(directory, "base.tar.zst"), CancellationToken.None));
            Assert.IsFalse(BaseTarball.CanWrite("base.tar.zst"));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
