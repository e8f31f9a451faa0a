using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Files arrive exactly: a fixture tree made here (no committed binaries) is built into an image, the candidate is
/// booted with systemd, and every property is checked inside — ACLs included, which docker commit alone drops.
/// The same checks run on each engine kind (<see cref="FileFidelityTests"/>, <see cref="CgroupV2FileFidelityTests"/>).
/// </summary>
public abstract class FileFidelityChecks
{
    /// <summary>The fixture project, its build and the booted candidate, on one engine.</summary>
    protected sealed record FidelityRun(ImageProject Project, DotnetBuild Build, DockerClient Docker, string? Container) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (Container is not null) await TestDocker.RemoveContainerAsync(Docker, Container);
            await TestDocker.RemoveProjectImagesAsync(Docker, Project.Image);
            Project.Dispose();
        }
    }

    protected abstract FidelityRun Run { get; }

    private string Fixture(string relative) => FixturePath(Run.Project, relative);

    private static string FixturePath(ImageProject project, string relative) => Path.Combine(project.Directory, "injected_volumes", "srv", "fidelity", relative);

    /// <summary>Makes the fixture tree, builds it on <paramref name="docker"/>'s engine and boots the candidate there.</summary>
    protected static async Task<FidelityRun> BuildAndBootAsync(DockerClient docker, params string[] buildArguments)
    {
        Repository.RequirePackedSdk();
        var p = new ImageProject($"makinastates/test-fidelity-{Guid.NewGuid():N}"[..44]);
        string Fixture(string relative) => FixturePath(p, relative);
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

        var build = await p.BuildAsync(buildArguments);
        try
        {
            var container = build.Succeeded ? await TestDocker.BootAsync(docker, $"{p.Image}:candidate", $"fidelity-test-{Guid.NewGuid():N}") : null;
            return new FidelityRun(p, build, docker, container);
        }
        catch
        {
            await new FidelityRun(p, build, docker, null).DisposeAsync();
            throw;
        }
    }

    private async Task<string> Inside(string command)
    {
        Assert.IsTrue(Run.Build.Succeeded, Run.Build.Output);
        var (code, output) = await TestDocker.ExecAsync(Run.Docker, Run.Container!, command);
        Assert.AreEqual(0L, code, $"{command}: {output}");
        return output.Trim();
    }

    [TestMethod]
    public void Fifo_gives_a_warning_and_the_build_succeeds()
    {
        Assert.IsTrue(Run.Build.Succeeded, Run.Build.Output);
        StringAssert.Contains(Run.Build.Output, "warning MSI2005");
        StringAssert.Contains(Run.Build.Output, Fixture("a-fifo"));
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

/// <summary>The fidelity checks on the main engine.</summary>
[TestClass]
public sealed class FileFidelityTests : FileFidelityChecks
{
    private static FidelityRun? s_run;
    private static DockerClient? s_docker;

    protected override FidelityRun Run => s_run ?? throw new InvalidOperationException("the fixture was not built");

    [ClassInitialize]
    public static async Task BuildFixtureImage(TestContext _)
    {
        s_docker = await TestDocker.RequireEngineAsync();
        s_run = await BuildAndBootAsync(s_docker);
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_run is not null) await s_run.DisposeAsync();
        s_docker?.Dispose();
    }
}
