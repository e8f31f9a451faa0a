using System.Text;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Bad input and faults from the reliability list (docs/reliability.md): each shows its error or handling, and that
/// nothing was lost or left behind.
/// </summary>
[TestClass]
public sealed class ReliabilityTests
{
    private static string UniqueImage(string name) => $"makinastates/test-{name}-{Guid.NewGuid():N}"[..40];

    [TestMethod]
    public async Task Empty_command_is_MSI0003()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("no-command");
        using var project = new ImageProject(image);
        var build = await project.BuildAsync("-p:MsCommand=");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0003");
        StringAssert.Contains(build.Output, "MsCommand");
        await TestDocker.AssertNoStageContainerAsync(docker, image);
    }

    [TestMethod]
    public async Task Crlf_script_is_normalised_with_a_warning_and_a_script_without_run_bit_runs()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("crlf");
        using var project = new ImageProject(image);
        var stage3 = Path.Combine(project.Directory, "image_rootfs", "bootstrap_scripts", "stage3.sh");
        Directory.CreateDirectory(Path.GetDirectoryName(stage3)!);
        File.WriteAllText(stage3, "#!/bin/bash\r\nset -e\r\necho crlf-ok > /srv/crlf-marker\r\n");
        File.SetUnixFileMode(stage3, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        try
        {
            var build = await project.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "warning MSI0012");
            StringAssert.Contains(build.Output, stage3);
            Assert.AreEqual("crlf-ok\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/crlf-marker"));
            var placed = Path.Combine(project.Directory, "injected_volumes", "bootstrap_scripts", "stage3.sh");
            Assert.IsTrue(File.GetUnixFileMode(placed).HasFlag(UnixFileMode.UserExecute), "the placed script is runnable");
            Assert.IsTrue(File.ReadAllText(stage3).Contains('\r'), "the user's own file is left as it was");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Symlink_loops_in_the_injected_tree_travel_as_links()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("loop");
        using var project = new ImageProject(image);
        var loop = Directory.CreateDirectory(Path.Combine(project.Directory, "injected_volumes", "srv", "loop")).FullName;
        File.CreateSymbolicLink(Path.Combine(loop, "a"), "b");
        File.CreateSymbolicLink(Path.Combine(loop, "b"), "a");
        File.CreateSymbolicLink(Path.Combine(loop, "self"), ".");
        try
        {
            var build = await project.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            var links = await TestDocker.RunInImageAsync(docker, $"{image}:candidate", "readlink /srv/loop/a /srv/loop/b /srv/loop/self");
            Assert.AreEqual("b\na\n.", links.Trim());
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Injecting_into_merged_usr_folders_keeps_their_links_and_the_images_folders()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("merged-usr");
        using var project = new ImageProject(image);
        project.Write("injected_volumes/bin/mytool", "#!/bin/sh\necho mytool\n", executable: true);
        project.Write("injected_volumes/etc/mytool.conf", "x\n");
        // A folder the host made with other permissions: the image's /etc keeps its own.
        File.SetUnixFileMode(Path.Combine(project.Directory, "injected_volumes", "etc"), (UnixFileMode)Convert.ToInt32("700", 8));
        try
        {
            var build = await project.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            var state = await TestDocker.RunInImageAsync(docker, $"{image}:candidate", "readlink /bin; stat -c %a /etc; /usr/bin/mytool; test -x /bin/bash && echo bash-ok");
            Assert.AreEqual("usr/bin\n755\nmytool\nbash-ok", state.Trim());
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task A_failing_hook_between_stages_leaves_no_container()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("hook");
        using var project = new ImageProject(image, """
            <Target Name="FailingHookAfterStage2" AfterTargets="MsStage2">
              <Error Text="the user's hook failed" />
            </Target>
            """);
        try
        {
            var build = await project.BuildAsync();
            Assert.IsFalse(build.Succeeded);
            StringAssert.Contains(build.Output, "the user's hook failed");
            Assert.IsNotNull(build.BuildId, "the build did not reach Stage2");
            await TestDocker.AssertNoStageContainerAsync(docker, image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Truncated_base_tarball_is_detected_never_used_and_the_next_build_after_deleting_it_succeeds()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var good = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "makinastates-image", "baseimage-debian-bookworm.tar.xz");
        if (!File.Exists(good))
        {
            using var seed = new ImageProject(UniqueImage("seed"));
            Assert.IsTrue((await seed.BuildAsync()).Succeeded);
            await TestDocker.RemoveProjectImagesAsync(docker, seed.Image);
        }
        var image = UniqueImage("truncated");
        using var project = new ImageProject(image);
        var data = Directory.CreateDirectory(Path.Combine(project.Directory, "data")).FullName;
        var tarball = Path.Combine(data, "baseimage-debian-bookworm.tar.xz");
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(tarball, bytes[..(bytes.Length / 2)]);
        // "Delete it to redo": the redo here copies the good tarball (a stage0.sh from MsStagePath), not debootstrap.
        var stagePath = Directory.CreateDirectory(Path.Combine(project.Directory, "stage-path")).FullName;
        project.Write("stage-path/stage0.sh", $"#!/bin/bash\nset -e\ncp '{good}' \"$MS_DATA_DIR/$MS_BASEIMAGE.tmp\"\nmv \"$MS_DATA_DIR/$MS_BASEIMAGE.tmp\" \"$MS_DATA_DIR/$MS_BASEIMAGE\"\n", executable: true);
        try
        {
            var failed = await project.BuildAsync($"-p:MsDataDir={data}", $"-p:MsStagePath={stagePath}");
            Assert.IsFalse(failed.Succeeded);
            StringAssert.Contains(failed.Output, "error MSI1002");
            StringAssert.Contains(failed.Output, tarball);
            StringAssert.Contains(failed.Output, "delete it");
            await TestDocker.AssertNoStageContainerAsync(docker, image);

            var again = await project.BuildAsync($"-p:MsDataDir={data}", $"-p:MsStagePath={stagePath}");
            Assert.IsFalse(again.Succeeded, "a corrupt tarball must not be used by a later build either");
            StringAssert.Contains(again.Output, "error MSI1002");

            File.Delete(tarball);
            var redone = await project.BuildAsync($"-p:MsDataDir={data}", $"-p:MsStagePath={stagePath}");
            Assert.IsTrue(redone.Succeeded, redone.Output);
            CollectionAssert.AreEqual(bytes, File.ReadAllBytes(tarball));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Base_tarball_that_reads_through_but_the_engine_refuses_is_MSI1008_and_kept()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("refused");
        using var project = new ImageProject(image);
        var data = Directory.CreateDirectory(Path.Combine(project.Directory, "data")).FullName;
        // tar(1) lists it fine; the engine cannot extract it (a hard link to a file the archive does not have).
        var tarball = Path.Combine(data, "base-refused.tar");
        using (var file = File.Create(tarball))
        using (var writer = new System.Formats.Tar.TarWriter(file, System.Formats.Tar.TarEntryFormat.Ustar))
        {
            writer.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "etc/hello") { DataStream = new MemoryStream("hi\n"u8.ToArray()) });
            writer.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.HardLink, "etc/link") { LinkName = "nowhere/missing" });
        }
        var build = await project.BuildAsync($"-p:MsDataDir={data}", "-p:MsBaseImage=base-refused.tar");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI1008");
        StringAssert.Contains(build.Output, tarball);
        Assert.IsFalse(build.Output.Contains("error MSI1002", StringComparison.Ordinal), "a tarball that reads through is not called corrupt");
        Assert.IsTrue(File.Exists(tarball), "the tarball is kept");
        await TestDocker.AssertNoStageContainerAsync(docker, image);
    }

    [TestMethod]
    public async Task Unwritable_data_dir_is_MSI0005_naming_it()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("data-dir");
        using var project = new ImageProject(image);
        // Not even root can create a folder in /proc.
        var build = await project.BuildAsync("-p:MsDataDir=/proc/makinastates-data");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0005");
        StringAssert.Contains(build.Output, "/proc/makinastates-data");
        await TestDocker.AssertNoStageContainerAsync(docker, image);
    }

    [TestMethod]
    public async Task Engine_socket_is_never_mounted_into_a_stage_container()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject(UniqueImage("socket"));
        var build = await project.BuildAsync("-p:MsDockerArgs=\"-v /var/run/docker.sock:/var/run/docker.sock\"");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0011");
        StringAssert.Contains(build.Output, "socket");
    }

    [TestMethod]
    public async Task Secrets_reach_stage2_and_stage3_but_never_the_image_or_the_log()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("secrets");
        var fileSecret = $"file-secret-{Guid.NewGuid():N}";
        var envSecret = $"env-secret-{Guid.NewGuid():N}";
        using var project = new ImageProject(image, """
            <ItemGroup>
              <MsSecret Include="db_password" File="secrets/db.txt" />
              <MsSecret Include="api_token" EnvironmentVariable="MAKINASTATES_TEST_TOKEN" />
            </ItemGroup>
            """);
        project.Write("secrets/db.txt", fileSecret);
        var check = """
            test "$(cat /run/secrets/db_password)" = "$1" && test "$(cat /run/secrets/api_token)" = "$2" && echo "STAGE secrets ok"
            test "$(stat -c %a /run/secrets/db_password)" = 600
            # The stage script uses the secret to make something else, as a real build would.
            echo "derived from a secret" > /srv/derived
            """;
        project.Write("image_rootfs/bootstrap_scripts/stage2.sh", $"#!/bin/bash\nset -e\nset -- '{fileSecret}' '{envSecret}'\n{check.Replace("STAGE", "stage2")}", executable: true);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", $"#!/bin/bash\nset -e\nset -- \"$(cat /run/secrets/db_password)\" \"$(cat /run/secrets/api_token)\"\n{check.Replace("STAGE", "stage3")}", executable: true);
        try
        {
            var build = await DotnetBuild.RunAsync(project.ProjectFile, environment: new Dictionary<string, string?> { ["MAKINASTATES_TEST_TOKEN"] = envSecret });
            Assert.IsTrue(build.Succeeded, build.Output.Replace(fileSecret, "***").Replace(envSecret, "***"));
            StringAssert.Contains(build.Output, "stage2 secrets ok");
            StringAssert.Contains(build.Output, "stage3 secrets ok");
            // stage2.sh holds the file secret in its text: the scripts are build-time only, never in the image.
            Assert.IsFalse(build.Output.Contains(envSecret, StringComparison.Ordinal), "a secret value is in the build log");

            var saved = await docker.Images.SaveImageAsync($"{image}:candidate");
            using var buffer = new MemoryStream();
            await saved.CopyToAsync(buffer);
            var bytes = buffer.ToArray();
            Assert.IsTrue(bytes.Length > 1_000_000, "docker save returned too little to be the image");
            Assert.AreEqual(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(fileSecret)), "the file secret is in the saved image");
            Assert.AreEqual(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(envSecret)), "the environment secret is in the saved image");
            Assert.IsTrue(bytes.AsSpan().IndexOf("derived from a secret"u8) >= 0, "the scan did not see the image's own files");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Secret_with_a_missing_source_is_MSI0013_naming_the_secret_not_a_value()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject(UniqueImage("secret-missing"), """
            <ItemGroup><MsSecret Include="db_password" File="nowhere.txt" /></ItemGroup>
            """);
        var build = await project.BuildAsync();
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0013");
        StringAssert.Contains(build.Output, "db_password");
        Assert.IsNull(build.BuildId, "the build went past Stage0's validation");
    }
}
