using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MsArchiveOutputPath and MsArchiveFormat that cannot work: each a coded error, before anything is built when it can
/// be known then, and nothing partial at the path (an archive already there unchanged) when it cannot (a full disk).
/// </summary>
[TestClass]
public sealed class ArchiveBadInputTests
{
    [TestMethod]
    public async Task An_unknown_format_is_MSI0019_before_anything_is_made()
    {
        var (docker, project) = await StartAsync();
        using var _ = docker;
        using var __ = project;
        var build = await project.BuildAsync("-p:MsArchiveFormat=zip", "-p:MsArchiveOutputPath=out/");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0019");
        StringAssert.Contains(build.Output, "MsArchiveFormat 'zip' is not one of oci, docker");
        await RefusedBuild.AssertNothingMadeAsync(build, project, docker);
        Assert.IsFalse(Directory.Exists(Path.Combine(project.Directory, "out")), "the archive's folder was made");
    }

    [TestMethod]
    public async Task A_folder_part_that_is_a_file_is_MSI0022_and_the_file_is_left_as_it_was()
    {
        var (docker, project) = await StartAsync();
        using var _ = docker;
        using var __ = project;
        var blocker = project.Write("blocker", "not a folder\n");
        var build = await project.BuildAsync("-p:MsArchiveOutputPath=blocker/images/image.tar");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0022");
        StringAssert.Contains(build.Output, $"'{blocker}' is a file, not a folder");
        Assert.AreEqual("not a folder\n", File.ReadAllText(blocker));
        await RefusedBuild.AssertNothingMadeAsync(build, project, docker);
    }

    [TestMethod]
    public async Task An_unwritable_place_is_MSI0022_before_anything_is_made()
    {
        var (docker, project) = await StartAsync();
        using var _ = docker;
        using var __ = project;
        // Root writes through any mode bits: a read-only file system is what refuses everyone.
        var readOnly = Directory.CreateDirectory(Path.Combine(project.Directory, "read-only")).FullName;
        MountTmpfs(readOnly, "ro,size=1m");
        try
        {
            var build = await project.BuildAsync($"-p:MsArchiveOutputPath={readOnly}/");
            Assert.IsFalse(build.Succeeded);
            StringAssert.Contains(build.Output, "error MSI0022");
            StringAssert.Contains(build.Output, $"this build cannot write in '{readOnly}'");
            await RefusedBuild.AssertNothingMadeAsync(build, project, docker);
            Assert.AreEqual(0, Directory.GetFileSystemEntries(readOnly).Length);
        }
        finally
        {
            HostProcess.Run("umount", readOnly);
        }
    }

    [TestMethod]
    public async Task The_docker_format_of_several_platforms_is_MSI0023_before_anything_is_made()
    {
        var (docker, project) = await StartAsync();
        using var _ = docker;
        using var __ = project;
        var build = await project.BuildAsync("-p:MsPlatforms=linux/amd64%3Blinux/arm64", "-p:MsArchiveFormat=docker", "-p:MsArchiveOutputPath=out/");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0023");
        StringAssert.Contains(build.Output, "MsArchiveFormat=docker holds one platform");
        await RefusedBuild.AssertNothingMadeAsync(build, project, docker);
        Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{project.Image}:candidate-arm64"));
    }

    [TestMethod]
    public async Task A_full_disk_is_MSI5001_and_leaves_the_previous_archive_and_no_partial_file()
    {
        var (docker, project) = await StartAsync();
        using var _ = docker;
        using var __ = project;
        var small = Directory.CreateDirectory(Path.Combine(project.Directory, "small")).FullName;
        MountTmpfs(small, "size=4m");
        try
        {
            var archive = Path.Combine(small, "image.tar");
            File.WriteAllText(archive, "the previous archive\n");
            var build = await project.BuildAsync($"-p:MsArchiveOutputPath={archive}");
            Assert.IsFalse(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "error MSI5001");
            StringAssert.Contains(build.Output, $"The archive '{archive}' (oci) could not be written");
            Assert.AreEqual("the previous archive\n", File.ReadAllText(archive), "the archive already there was changed");
            CollectionAssert.AreEqual(new[] { "image.tar" }, Directory.GetFileSystemEntries(small).Select(Path.GetFileName).ToArray(), "a partial file was left");
            Assert.IsNotNull(await TestDocker.ImageIdAsync(docker, $"{project.Image}:candidate"), "the candidate itself is built");
            await TestDocker.AssertNoStageContainerAsync(docker, project.Image);
        }
        finally
        {
            HostProcess.Run("umount", small);
            await TestDocker.RemoveProjectImagesAsync(docker, project.Image);
        }
    }

    private static async Task<(Docker.DotNet.DockerClient Docker, ImageProject Project)> StartAsync()
    {
        Repository.RequirePackedSdk();
        var docker = await TestDocker.RequireEngineAsync();
        return (docker, new ImageProject($"makinastates/test-archive-bad-{Guid.NewGuid():N}"[..40]));
    }

    private static void MountTmpfs(string folder, string options)
    {
        if (Mono.Unix.Native.Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("mounting a small tmpfs needs root");
        }
        HostProcess.Run("mount", "-t", "tmpfs", "-o", options, "tmpfs", folder);
    }
}
