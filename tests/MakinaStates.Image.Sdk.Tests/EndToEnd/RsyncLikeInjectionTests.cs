using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Injection as the seed's `rsync -aA`, tried as a makina-states user would with a new image project: ACLs on folders
/// the base already has, a data dir curated as root, preconfigured pillars, helpers beside stage3.sh. Built with the
/// default MsExistingFolderMetadata (acl) and with all; each candidate is booted and checked inside.
/// </summary>
[TestClass]
public sealed class RsyncLikeInjectionTests
{
    private static readonly string Image = $"makinastates/test-rsync-{Guid.NewGuid():N}"[..40];
    private static ImageProject? s_project;
    private static DockerClient? s_docker;
    private static DotnetBuild? s_default;
    private static DotnetBuild? s_all;
    private static string? s_defaultContainer;
    private static string? s_allContainer;
    private static string? s_defaultImageId;

    [ClassInitialize]
    public static async Task BuildBothWays(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_docker = await TestDocker.RequireEngineAsync();
        s_project = new ImageProject(Image);
        var p = s_project;
        string At(string relative) => Path.Combine(p.Directory, relative);
        // /srv exists in the base; /srv/projects is made by the build: both get access and default ACLs.
        p.Write("injected_volumes/srv/projects/hello/index.html", "hello\n");
        foreach (var (folder, perms) in new[] { ("injected_volumes/srv", "rx"), ("injected_volumes/srv/projects", "rwx") })
        {
            HostProcess.Run("setfacl", "-m", $"u:nobody:{perms}", At(folder));
            HostProcess.Run("setfacl", "-d", "-m", $"u:nobody:{perms}", At(folder));
        }
        p.Write("injected_volumes/srv/pillar/init.sls", "preconfigured: pillar\n");
        // A makina-states data dir curated as root.
        p.Write("injected_volumes/opt/data/readme", "data\n");
        Assert.AreEqual(0, Syscall.lchown(At("injected_volumes/opt"), 4242, 4242));
        Assert.AreEqual(0, Syscall.chmod(At("injected_volumes/opt"), (FilePermissions)Convert.ToUInt32("2775", 8)));
        // merged-usr: /bin is a link to usr/bin in the base.
        p.Write("injected_volumes/bin/mytool", "#!/bin/sh\necho mytool\n", executable: true);
        File.SetUnixFileMode(At("injected_volumes/bin"), (UnixFileMode)Convert.ToInt32("775", 8));
        p.Write("image_rootfs/bootstrap_scripts/lib/helper.sh", "helper_mark() { echo \"helper $(cat \"$1/data/.greeting\")\" > /srv/helper-mark; }\n");
        p.Write("image_rootfs/bootstrap_scripts/data/.greeting", "v1\n");
        p.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            here="$(cd "$(dirname "$0")" && pwd)"
            . "$here/lib/helper.sh"
            helper_mark "$here"
            """, executable: true);

        s_default = await p.BuildAsync();
        if (s_default.Succeeded)
        {
            s_defaultImageId = await TestDocker.ImageIdAsync(s_docker, $"{Image}:candidate");
            s_defaultContainer = await TestDocker.BootAsync(s_docker, $"{Image}:candidate", $"rsync-acl-{Guid.NewGuid():N}");
            s_all = await p.BuildAsync("-p:MsExistingFolderMetadata=all");
            if (s_all.Succeeded)
            {
                s_allContainer = await TestDocker.BootAsync(s_docker, $"{Image}:candidate", $"rsync-all-{Guid.NewGuid():N}");
            }
        }
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_docker is not null)
        {
            foreach (var container in new[] { s_defaultContainer, s_allContainer }.OfType<string>())
            {
                await TestDocker.RemoveContainerAsync(s_docker, container);
            }
            await TestDocker.RemoveProjectImagesAsync(s_docker, Image);
            if (s_defaultImageId is not null)
            {
                // Replaced by the second build, kept alive by the first container: removed by id.
                await TestDocker.RemoveImageAsync(s_docker, s_defaultImageId);
            }
            s_docker.Dispose();
        }
        s_project?.Dispose();
    }

    private static async Task<string> Inside(string? container, DotnetBuild? build, string command)
    {
        Assert.IsTrue(build?.Succeeded == true, build?.Output);
        var (code, output) = await TestDocker.ExecAsync(s_docker!, container!, command);
        Assert.AreEqual(0L, code, $"{command}: {output}");
        return output.Trim();
    }

    private static Task<string> InDefault(string command) => Inside(s_defaultContainer, s_default, command);

    private static Task<string> InAll(string command) => Inside(s_allContainer, s_all, command);

    [TestMethod]
    public async Task Folders_the_image_has_take_the_injected_access_and_default_acls_by_default()
    {
        var srv = await InDefault("getfacl -n -c /srv");
        StringAssert.Contains(srv, "user:65534:r-x");
        StringAssert.Contains(srv, "default:user:65534:r-x");
        var projects = await InDefault("getfacl -n -c /srv/projects");
        StringAssert.Contains(projects, "user:65534:rwx");
        StringAssert.Contains(projects, "default:user:65534:rwx");
        // The default ACL works: what the build made under /srv inherited it.
        StringAssert.Contains(await InDefault("getfacl -n -c /srv/helper-mark"), "user:65534:r-x");
    }

    [TestMethod]
    public async Task By_default_the_image_keeps_its_owner_and_mode_and_with_all_takes_the_injected_ones()
    {
        Assert.AreEqual("0:0 755", await InDefault("stat -c '%u:%g %a' /opt"));
        Assert.AreEqual("4242:4242 2775", await InAll("stat -c '%u:%g %a' /opt"));
        StringAssert.Contains(s_all!.Output, "MsExistingFolderMetadata=all");
        StringAssert.Contains(await InAll("getfacl -n -c /srv"), "default:user:65534:r-x");
    }

    [TestMethod]
    public async Task Links_to_folders_stay_links_and_receive_the_content()
    {
        foreach (var inside in new Func<string, Task<string>>[] { InDefault, InAll })
        {
            Assert.AreEqual("usr/bin", await inside("readlink /bin"));
            Assert.AreEqual("mytool", await inside("/usr/bin/mytool"));
        }
        Assert.AreEqual("755", await InDefault("stat -c %a /usr/bin"), "by default the image's /usr/bin keeps its mode");
        Assert.AreEqual("775", await InAll("stat -c %a /usr/bin"), "with all, the injected bin/ (775) reaches /usr/bin through the link");
    }

    [TestMethod]
    public async Task Preconfigured_pillars_stay_through_the_snapshot()
    {
        Assert.AreEqual("preconfigured: pillar", await InDefault("cat /srv/pillar/init.sls"));
        Assert.AreEqual("hello", await InDefault("cat /srv/projects/hello/index.html"));
    }

    [TestMethod]
    public async Task Helpers_beside_stage3_are_placed_at_any_depth()
    {
        Assert.AreEqual("helper v1", await InDefault("cat /srv/helper-mark"));
        Assert.IsFalse(s_default!.Output.Contains("No such file or directory", StringComparison.Ordinal), s_default.Output);
    }
}
