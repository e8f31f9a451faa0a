using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class InjectedTreeTests
{
    private string _root = "";

    [TestInitialize]
    public void Create() => _root = Directory.CreateTempSubdirectory("merge-").FullName;

    [TestCleanup]
    public void Remove() => Directory.Delete(_root, recursive: true);

    private string Write(string relative, string content)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    [TestMethod]
    public void Image_rootfs_wins_over_injected_volumes_and_folders_merge()
    {
        Write("injected_volumes/etc/app.conf", "from injected_volumes");
        Write("injected_volumes/etc/only-injected", "x");
        Write("image_rootfs/etc/app.conf", "from image_rootfs");
        Write("image_rootfs/etc/only-rootfs", "y");
        Write("injected_volumes/bootstrap_scripts/stage3.sh", "build input, not image content");

        var tree = InjectedTree.Collect([
            new InjectedTree.Source(Path.Combine(_root, "injected_volumes"), "/", ["bootstrap_scripts"]),
            new InjectedTree.Source(Path.Combine(_root, "image_rootfs"), "/", ["bootstrap_scripts"]),
        ]);
        var nodes = tree.Nodes.ToDictionary(n => n.ImagePath);
        Assert.AreEqual(Path.Combine(_root, "image_rootfs/etc/app.conf"), nodes["etc/app.conf"].HostPath);
        Assert.IsTrue(nodes.ContainsKey("etc/only-injected"));
        Assert.IsTrue(nodes.ContainsKey("etc/only-rootfs"));
        Assert.IsFalse(nodes.Keys.Any(k => k.StartsWith("bootstrap_scripts", StringComparison.Ordinal)));
    }

    [TestMethod]
    public void Items_land_at_their_target_path()
    {
        Write("site/index.html", "page");
        var tree = InjectedTree.Collect([new InjectedTree.Source(Path.Combine(_root, "site"), "/srv/projects/hello/www/")]);
        CollectionAssert.AreEquivalent(new[] { "srv/projects/hello/www", "srv/projects/hello/www/index.html" }, tree.Nodes.Select(n => n.ImagePath).ToArray());
    }

    [TestMethod]
    [DataRow("relative/path")]
    [DataRow("/srv/../etc")]
    public void Bad_target_paths_are_rejected(string targetPath)
    {
        Write("site/index.html", "page");
        var error = Assert.ThrowsExactly<ImageBuildException>(() => InjectedTree.Collect([new InjectedTree.Source(Path.Combine(_root, "site"), targetPath)]));
        Assert.AreEqual(MsiCodes.TargetPathInvalid, error.Code);
        StringAssert.Contains(error.Message, targetPath);
    }

    [TestMethod]
    public void A_missing_injected_path_is_an_error_naming_it()
    {
        var missing = Path.Combine(_root, "nope");
        var error = Assert.ThrowsExactly<ImageBuildException>(() => InjectedTree.Collect([new InjectedTree.Source(missing, "/")]));
        Assert.AreEqual(MsiCodes.InjectedVolumeMissing, error.Code);
        StringAssert.Contains(error.Message, missing);
    }

    [TestMethod]
    public void Fifos_are_skipped_and_reported()
    {
        Write("tree/file", "x");
        var fifo = Path.Combine(_root, "tree", "pipe");
        Assert.AreEqual(0, Syscall.mkfifo(fifo, FilePermissions.DEFFILEMODE));
        var tree = InjectedTree.Collect([new InjectedTree.Source(Path.Combine(_root, "tree"), "/")]);
        CollectionAssert.AreEqual(new[] { fifo }, tree.Skipped.ToArray());
        CollectionAssert.AreEqual(new[] { "file" }, tree.Nodes.Select(n => n.ImagePath).ToArray());
    }
}
