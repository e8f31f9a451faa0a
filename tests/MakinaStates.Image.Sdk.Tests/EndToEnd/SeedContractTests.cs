using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>The seed's knobs, in MSBuild form, against the real engine.</summary>
[TestClass]
public sealed class SeedContractTests
{
    private static string UniqueImage(string name) => $"makinastates/test-{name}-{Guid.NewGuid():N}"[..40];

    [TestMethod]
    public async Task Stage_script_precedence_salt_then_image_rootfs_then_injected_volumes_then_stage_path_then_sdk()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("precedence");
        using var project = new ImageProject(image);
        var stagePath = Directory.CreateDirectory(Path.Combine(project.Directory, "stage-path")).FullName;
        string Marker(string who) => $"#!/bin/bash\necho {who} > /srv/stage3-winner\n";
        project.Write(".salt/stage3.sh", Marker("salt"), executable: true);
        // .salt/ counts in a corpus project: a git clone (with a commit to deploy).
        foreach (var git in new[] { "init -q", "add -A", "-c user.name=t -c user.email=t@example.invalid commit -qm first" })
        {
            using var process = System.Diagnostics.Process.Start("git", $"-C {project.Directory} {git}");
            process.WaitForExit();
            Assert.AreEqual(0, process.ExitCode, git);
        }
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", Marker("image_rootfs"), executable: true);
        project.Write("stage-path/stage3.sh", Marker("stage_path"), executable: true);
        try
        {
            async Task<string?> Winner()
            {
                // A corpus project runs the makina-states step by default (auto): not what this test is about.
                var build = await project.BuildAsync($"-p:MsStagePath={stagePath}", "-p:MsMakinaStates=false");
                Assert.IsTrue(build.Succeeded, build.Output);
                return (await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/stage3-winner"))?.Trim();
            }

            Assert.AreEqual("salt", await Winner());
            Directory.Delete(Path.Combine(project.Directory, ".salt"), recursive: true);
            Assert.AreEqual("image_rootfs", await Winner());
            File.Delete(Path.Combine(project.Directory, "image_rootfs/bootstrap_scripts/stage3.sh"));
            // Stage0 wrote its own copy into injected_volumes/bootstrap_scripts/: a user's edit of it is an override.
            project.Write("injected_volumes/bootstrap_scripts/stage3.sh", Marker("injected_volumes"), executable: true);
            Assert.AreEqual("injected_volumes", await Winner());
            File.Delete(Path.Combine(project.Directory, "injected_volumes/bootstrap_scripts/stage3.sh"));
            Assert.AreEqual("stage_path", await Winner());
            File.Delete(Path.Combine(stagePath, "stage3.sh"));
            var sdk = await project.BuildAsync($"-p:MsStagePath={stagePath}");
            Assert.IsTrue(sdk.Succeeded, sdk.Output);
            StringAssert.Contains(sdk.Output, "stage3.sh: using");
            StringAssert.Contains(sdk.Output, "from the SDK's stage-scripts/");
            Assert.IsNull(await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/stage3-winner"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Stage1_is_reused_while_its_key_holds_and_when_stage3_changes_and_a_helper_change_rebuilds_both()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("stage1-cache");
        using var project = new ImageProject(image);
        const string Stage3 = "#!/bin/bash\nset -e\n. \"$(dirname \"$0\")/lib/helper.sh\"\necho \"$HELPER\" > /srv/helper\n";
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", Stage3, executable: true);
        project.Write("image_rootfs/bootstrap_scripts/lib/helper.sh", "HELPER=one\n");
        var page = project.Write("injected_volumes/srv/page.txt", "one\n");
        async Task<string?> Helper() => (await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/helper"))?.Trim();
        try
        {
            var initial = await project.BuildAsync();
            Assert.IsTrue(initial.Succeeded, initial.Output);
            var first = await docker.Images.InspectImageAsync($"{image}-stage1:latest");
            var firstKey = first.Config!.Labels!["io.makinastates.stage1-key"];
            var firstCandidate = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");
            Assert.AreEqual("one", await Helper());

            // A changed injected file is not a stage1 input: the build runs Stage1, which must reuse the image.
            File.WriteAllText(page, "two\n");
            await using var events = EngineEvents.Record(docker, $"{BuildLabels.Image}={image}");
            var second = await project.BuildAsync();
            var recorded = await events.StopAsync();
            Assert.IsTrue(second.Succeeded, second.Output);
            var stages = recorded.Where(e => e.Action == "create" && e.Actor.Attributes[BuildLabels.BuildId] == second.BuildId).Select(e => e.Actor.Attributes[BuildLabels.Stage]).ToList();
            Assert.AreEqual(first.ID, (await docker.Images.InspectImageAsync($"{image}-stage1:latest")).ID, "the stage1 image was replaced");
            // The build container, the twin whose commit gives the candidate's config (TopLayerRewrite.CommitAsync), and
            // the never-started container the bill of materials reads the candidate through (Sbom/ImageContents).
            CollectionAssert.AreEqual(new[] { "stage2", "commit", "sbom" }, stages, "the second build's containers");
            Assert.AreNotEqual(firstCandidate, await TestDocker.ImageIdAsync(docker, $"{image}:candidate"), "stages 2 and 3 did not run");
            Assert.AreEqual("two\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/page.txt"));
            StringAssert.Contains(second.Output, $"Stage1: {image}-stage1:latest is up to date");

            // stage3.sh shapes only stages 2 and 3: the stage1 image is the same one.
            var candidate = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");
            project.Write("image_rootfs/bootstrap_scripts/stage3.sh", Stage3 + "echo changed > /srv/stage3-changed\n", executable: true);
            var third = await project.BuildAsync();
            Assert.IsTrue(third.Succeeded, third.Output);
            StringAssert.Contains(third.Output, "(reused)");
            Assert.AreEqual(first.ID, (await docker.Images.InspectImageAsync($"{image}-stage1:latest")).ID);
            Assert.AreNotEqual(candidate, await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));

            // Only a helper changed: the image is out of date, and the candidate follows it.
            project.Write("image_rootfs/bootstrap_scripts/lib/helper.sh", "HELPER=two\n");
            var fourth = await project.BuildAsync();
            Assert.IsTrue(fourth.Succeeded, fourth.Output);
            Assert.IsFalse(fourth.Output.Contains("is up to date (inputs key", StringComparison.Ordinal), fourth.Output);
            Assert.AreEqual("two", await Helper());
            // A helper stage1.sh might use is in its key too: replaced, and the old stage1 image removed.
            var replaced = await docker.Images.InspectImageAsync($"{image}-stage1:latest");
            Assert.AreNotEqual(first.ID, replaced.ID);
            Assert.AreNotEqual(firstKey, replaced.Config!.Labels!["io.makinastates.stage1-key"]);
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, first.ID), "the replaced stage1 image was not removed");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Existing_image_as_MsBase_is_the_start_of_stage1()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var parent = UniqueImage("parent");
        var child = UniqueImage("child");
        using var parentProject = new ImageProject(parent);
        parentProject.Write("injected_volumes/srv/from-parent", "parent\n");
        using var childProject = new ImageProject(child);
        try
        {
            Assert.IsTrue((await parentProject.BuildAsync()) is { Succeeded: true });
            var build = await childProject.BuildAsync($"-p:MsBase={parent}:candidate");
            Assert.IsTrue(build.Succeeded, build.Output);
            Assert.IsFalse(build.Output.Contains("baseimage-", StringComparison.Ordinal) && build.Output.Contains("Importing", StringComparison.Ordinal),
                "no base tarball is used when MsBase is an image");
            Assert.AreEqual("parent\n", await TestDocker.ReadFileFromImageAsync(docker, $"{child}:candidate", "/srv/from-parent"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, child);
            await TestDocker.RemoveProjectImagesAsync(docker, parent);
        }
    }

    [TestMethod]
    public async Task Absent_unpullable_MsBase_is_MSI1003_naming_it()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("no-base");
        using var project = new ImageProject(image);
        // A registry on a loopback port nothing listens on: the pull fails at once, and no traffic leaves the host.
        var build = await project.BuildAsync("-p:MsBase=127.0.0.1:1/nosuch/base:1");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI1003");
        StringAssert.Contains(build.Output, "'127.0.0.1:1/nosuch/base:1'");
        await TestDocker.AssertNoStageContainerAsync(docker, image);
    }

    [TestMethod]
    public async Task Docker_args_reach_the_stage_containers_and_the_data_dir_is_never_committed_nor_the_sdk_files_writable()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("docker-args");
        using var project = new ImageProject(image);
        var label = $"makinastates-test={Guid.NewGuid():N}";
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            echo "GREETING=$GREETING"
            echo "container=$container MS_IMAGE=$MS_IMAGE MS_OS_RELEASE=$MS_OS_RELEASE"
            test -f /docker/data/baseimage-debian-bookworm.tar.xz
            # Writable as in the seed, but not what the SDK keeps there (probed without writing: this is the shared cache).
            test -w /docker/data
            if test -w /docker/data/baseimage-debian-bookworm.tar.xz || test -w /docker/data/locks; then echo "the SDK's files are writable"; exit 1; fi
            test -f /docker/injected_volumes/srv/injected.txt
            test -f /docker/injected_volumes/bootstrap_scripts/stage3.sh
            """, executable: true);
        project.Write("injected_volumes/srv/injected.txt", "x\n");
        try
        {
            // The engine's create events carry each container's labels: no container has to live long enough to be seen.
            await using var events = EngineEvents.Record(docker, label);
            var build = await project.BuildAsync($"-p:MsDockerArgs=\"-e 'GREETING=hello world' --label {label} --cap-add SYS_PTRACE\"");
            var created = (await events.StopAsync()).Where(e => e.Action == "create").ToList();
            Assert.IsTrue(build.Succeeded, build.Output);
            Assert.IsTrue(created.Count > 0, "no stage container carried the --label of MsDockerArgs");
            Assert.IsTrue(created.All(e => e.Actor.Attributes.TryGetValue(BuildLabels.BuildId, out var id) && id == build.BuildId),
                "a container with the --label of MsDockerArgs is not a stage container of this build");
            StringAssert.Contains(build.Output, "GREETING=hello world");
            StringAssert.Contains(build.Output, $"container=docker MS_IMAGE={image} MS_OS_RELEASE=bookworm");

            var candidate = await docker.Images.InspectImageAsync($"{image}:candidate");
            Assert.IsFalse(candidate.Config!.Env!.Any(e => e.StartsWith("GREETING", StringComparison.Ordinal)), "MsDockerArgs env was baked into the image");
            var history = await docker.Images.GetImageHistoryAsync($"{image}:candidate");
            Assert.IsFalse(history.Any(h => h.CreatedBy.Contains("GREETING", StringComparison.Ordinal) || h.CreatedBy.Contains("MS_DATA_DIR", StringComparison.Ordinal)),
                "settings or -e values are in the image history: " + string.Join(" | ", history.Select(h => h.CreatedBy)));
            Assert.IsNull(await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/docker"), "/docker is in the committed image");
            Assert.AreEqual("x\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/injected.txt"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Unknown_docker_arg_is_MSI0011_naming_it_and_the_supported_ones()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject(UniqueImage("bad-args"));
        var build = await project.BuildAsync("-p:MsDockerArgs=\"--rm --pid host --env A=b\"");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0011");
        StringAssert.Contains(build.Output, "'--pid'");
        StringAssert.Contains(build.Output, "--cap-add");
        Assert.IsNull(build.BuildId, "the build went past Stage0's validation");
    }

    [TestMethod]
    [DataRow("MsStage1Name")]
    [DataRow("MsStage2Name")]
    [DataRow("MsImageCandidate")]
    public async Task Read_only_names_cannot_be_set(string name)
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject(UniqueImage("read-only"));
        var build = await project.BuildAsync($"-p:{name}=mine");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0010");
        StringAssert.Contains(build.Output, $"{name}='mine'");
    }

    [TestMethod]
    public async Task Read_only_names_are_unique_per_build_and_scripts_are_laid_out_only_when_changed()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("layout");
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho \"names $MS_STAGE1_NAME $MS_STAGE2_NAME $MS_IMAGE_CANDIDATE\"\n", executable: true);
        try
        {
            var first = await project.BuildAsync();
            Assert.IsTrue(first.Succeeded, first.Output);
            var scripts = Path.Combine(project.Directory, "injected_volumes", "bootstrap_scripts");
            foreach (var name in new[] { "stage0.sh", "stage1.sh", "stage2.sh", "stage3.sh", "Dockerfile.stage0", "snapshot.sh", "save-acls.sh" })
            {
                Assert.IsTrue(File.Exists(Path.Combine(scripts, name)), name);
            }
            Assert.AreEqual(File.ReadAllText(Path.Combine(project.Directory, "image_rootfs/bootstrap_scripts/stage3.sh")), File.ReadAllText(Path.Combine(scripts, "stage3.sh")));
            // Backdated: a rewrite, however soon, gives a file a new mtime.
            var backdated = DateTime.UtcNow.AddHours(-1);
            var placed = Directory.GetFiles(scripts).Where(f => !f.EndsWith(".makinastates-generated", StringComparison.Ordinal)).ToList();
            placed.ForEach(f => File.SetLastWriteTimeUtc(f, backdated));

            // Forced: an unchanged project is otherwise up to date and runs no stage.
            var second = await project.BuildAsync("-p:MsForceRebuild=true");
            Assert.IsTrue(second.Succeeded, second.Output);
            foreach (var file in placed)
            {
                Assert.AreEqual(backdated, File.GetLastWriteTimeUtc(file), $"{file} was rewritten although unchanged");
            }

            string Names(DotnetBuild build) => build.Output.Split('\n').First(l => l.Contains("stage3: names", StringComparison.Ordinal)).Trim();
            StringAssert.Contains(Names(first), $"{image}:candidate");
            Assert.AreNotEqual(Names(first), Names(second), "stage container names must be unique per build");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
