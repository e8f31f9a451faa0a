using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Files arrive exactly: a fixture tree made here (no committed binaries) is built into an image, the candidate is
/// booted with systemd, and every property is checked inside — ACLs included, which docker commit alone drops.
/// </summary>
[TestClass]
public sealed class FileFidelityTests
{
    private static readonly string Image = $"makinastates/test-fidelity-{Guid.NewGuid():N}"[..44];
    private static ImageProject? s_project;
    private static DotnetBuild? s_build;
    private static DockerClient? s_docker;
    private static string? s_container;

    private static string Fixture(string relative) => Path.Combine(s_project!.Directory, "injected_volumes", "srv", "fidelity", relative);

    [ClassInitialize]
    public static async Task BuildFixtureImage(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_docker = await TestDocker.RequireEngineAsync();
        s_project = new ImageProject(Image);
        var p = s_project;
        p.Write("injected_volumes/srv/fidelity/acl-file", "acl\n");
        HostProcess.Run("setfacl", "-m", "u:4242:rw", Fixture("acl-file"));
        Directory.CreateDirectory(Fixture("default-acl-dir"));
        HostProcess.Run("setfacl", "-d", "-m", "g:4243:rx", Fixture("default-acl-dir"));
        HostProcess.Run("setfacl", "-m", "g:4243:rwx", Fixture("default-acl-dir"));
        p.Write("injected_volumes/srv/fidelity/xattr-file", "xattr\n");
        Assert.AreEqual(0, Syscall.lsetxattr(Fixture("xattr-file"), "user.makina", "kept"u8.ToArray()));
        p.Write("injected_volumes/srv/fidelity/setuid", "#!/bin/sh\n");
        Assert.AreEqual(0, Syscall.chmod(Fixture("setuid"), (FilePermissions)Convert.ToUInt32("4755", 8)));
        p.Write("injected_volumes/srv/fidelity/owned", "owned\n");
        Assert.AreEqual(0, Syscall.lchown(Fixture("owned"), 4242, 4243));
        File.CreateSymbolicLink(Fixture("relative-link"), "acl-file");
        File.CreateSymbolicLink(Fixture("absolute-link"), "/etc/hostname");
        File.CreateSymbolicLink(Fixture("dangling-link"), "/does/not/exist");
        p.Write("injected_volumes/srv/fidelity/hard-a", "same inode\n");
        Assert.AreEqual(0, Syscall.link(Fixture("hard-a"), Fixture("hard-b")));
        p.Write("injected_volumes/srv/fidelity/name with spaces", "spaces\n");
        p.Write("injected_volumes/srv/fidelity/ünïcödé-名前", "unicode\n");
        Directory.CreateDirectory(Fixture("empty-folder"));
        using (var sparse = File.Create(Fixture("sparse-100M")))
        {
            sparse.SetLength(100L * 1024 * 1024);
        }
        p.Write("injected_volumes/srv/fidelity/override.txt", "from injected_volumes\n");
        p.Write("image_rootfs/srv/fidelity/override.txt", "from image_rootfs\n");
        Assert.AreEqual(0, Syscall.mkfifo(Fixture("a-fifo"), FilePermissions.DEFFILEMODE));
        p.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            echo made-by-stage3 > /srv/fidelity/stage3-acl
            setfacl -m u:4244:r /srv/fidelity/stage3-acl
            """, executable: true);

        s_build = await s_project.BuildAsync();
        if (s_build.Succeeded)
        {
            s_container = await TestDocker.BootAsync(s_docker, $"{Image}:candidate", $"fidelity-test-{Guid.NewGuid():N}");
        }
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_docker is not null)
        {
            if (s_container is not null) await TestDocker.RemoveContainerAsync(s_docker, s_container);
            await TestDocker.RemoveProjectImagesAsync(s_docker, Image);
            s_docker.Dispose();
        }
        s_project?.Dispose();
    }

    private static async Task<string> Inside(string command)
    {
        Assert.IsTrue(s_build!.Succeeded, s_build.Output);
        var (code, output) = await TestDocker.ExecAsync(s_docker!, s_container!, command);
        Assert.AreEqual(0L, code, $"{command}: {output}");
        return output.Trim();
    }

    [TestMethod]
    public void Fifo_gives_a_warning_and_the_build_succeeds()
    {
        Assert.IsTrue(s_build!.Succeeded, s_build.Output);
        StringAssert.Contains(s_build.Output, "warning MSI2005");
        StringAssert.Contains(s_build.Output, Fixture("a-fifo"));
        Assert.IsTrue(s_build.Output.Contains("a-fifo", StringComparison.Ordinal));
    }

    [TestMethod]
    public async Task Posix_acls_survive_the_commit_and_equal_the_hosts()
    {
        foreach (var name in new[] { "acl-file", "default-acl-dir" })
        {
            var host = HostProcess.Run("getfacl", "-n", "-c", "-p", Fixture(name)).Trim();
            var image = await Inside($"getfacl -n -c -p /srv/fidelity/{name}");
            Assert.AreEqual(host, image, name);
        }
        StringAssert.Contains(await Inside("getfacl -n -c /srv/fidelity/acl-file"), "user:4242:rw-");
        StringAssert.Contains(await Inside("getfacl -n -c /srv/fidelity/default-acl-dir"), "default:group:4243:r-x");
    }

    [TestMethod]
    public async Task Acl_set_by_stage3_is_back_after_boot()
    {
        StringAssert.Contains(await Inside("getfacl -n -c /srv/fidelity/stage3-acl"), "user:4244:r--");
        Assert.AreEqual("", await Inside("ls /acls.restore 2>/dev/null || true"), "the restore marker is removed after the restore");
    }

    [TestMethod]
    public async Task User_xattr_survives()
    {
        Assert.AreEqual("kept", await Inside("getfattr --absolute-names --only-values -n user.makina /srv/fidelity/xattr-file"));
    }

    [TestMethod]
    public async Task Modes_and_numeric_owners_are_kept()
    {
        Assert.AreEqual("4755 0 0", await Inside("stat -c '%a %u %g' /srv/fidelity/setuid"));
        Assert.AreEqual("4242 4243", await Inside("stat -c '%u %g' /srv/fidelity/owned"));
    }

    [TestMethod]
    public async Task Symlinks_stay_links_and_hardlinks_stay_linked()
    {
        Assert.AreEqual("acl-file", await Inside("readlink /srv/fidelity/relative-link"));
        Assert.AreEqual("/etc/hostname", await Inside("readlink /srv/fidelity/absolute-link"));
        Assert.AreEqual("/does/not/exist", await Inside("readlink /srv/fidelity/dangling-link"));
        Assert.AreEqual(await Inside("stat -c %i /srv/fidelity/hard-a"), await Inside("stat -c %i /srv/fidelity/hard-b"));
        Assert.AreEqual("2", await Inside("stat -c %h /srv/fidelity/hard-a"));
    }

    [TestMethod]
    public async Task Names_empty_folders_large_files_and_overrides_arrive()
    {
        Assert.AreEqual("spaces", await Inside("cat '/srv/fidelity/name with spaces'"));
        Assert.AreEqual("unicode", await Inside("cat '/srv/fidelity/ünïcödé-名前'"));
        Assert.AreEqual("directory 0", await Inside("echo $(stat -c %F /srv/fidelity/empty-folder) $(ls -A /srv/fidelity/empty-folder | wc -l)"));
        Assert.AreEqual("104857600", await Inside("stat -c %s /srv/fidelity/sparse-100M"));
        Assert.AreEqual("from image_rootfs", await Inside("cat /srv/fidelity/override.txt"));
        Assert.AreEqual("absent", await Inside("test -e /srv/fidelity/a-fifo && echo present || echo absent"));
    }

}
