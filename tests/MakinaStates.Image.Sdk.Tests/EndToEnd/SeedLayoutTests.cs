using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// A makina-states user's tree and habits as they are: the seed's data/ and data/&lt;image&gt;/ layout, its
/// `stage.py -ti --rm -e MS_BASE=…` command line, and stage scripts that write to /docker/data.
/// </summary>
[TestClass]
public sealed class SeedLayoutTests
{
    private static string UniqueImage(string name) => $"makinastates/test-{name}-{Guid.NewGuid():N}"[..40];

    /// <summary>
    /// The base tarball an earlier build made, put into <paramref name="dataDirectory"/> as the seed's data dir holds
    /// one: hard-linked from the machine's cache (copied across file systems), so no debootstrap runs here. A stage
    /// script that removed it would only remove this link.
    /// </summary>
    private static async Task<string> PlaceEarlierBaseTarballAsync(string dataDirectory)
    {
        var cached = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "makinastates-image", "baseimage-debian-bookworm.tar.xz");
        if (!File.Exists(cached))
        {
            using var earlier = new ImageProject(UniqueImage("earlier"));
            var build = await earlier.BuildAsync();
            using var docker = await TestDocker.RequireEngineAsync();
            await TestDocker.RemoveProjectImagesAsync(docker, earlier.Image);
            Assert.IsTrue(build.Succeeded, build.Output);
        }
        Directory.CreateDirectory(dataDirectory);
        var placed = Path.Combine(dataDirectory, "baseimage-debian-bookworm.tar.xz");
        using (var link = System.Diagnostics.Process.Start("ln", [cached, placed]))
        {
            await link.WaitForExitAsync();
            if (link.ExitCode != 0)
            {
                File.Copy(cached, placed);
            }
        }
        return placed;
    }

    [TestMethod]
    public async Task Seed_tree_builds_with_a_three_line_project_and_no_MsImageDir_without_debootstrap_and_is_then_up_to_date()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("seed-tree");
        using var project = new ImageProject(image);
        File.WriteAllText(project.ProjectFile, $"""
            <Project Sdk="MakinaStates.Image.Sdk/{Repository.SdkVersion}">
              <PropertyGroup><MsImage>{image}</MsImage></PropertyGroup>
            </Project>
            """);
        var data = Path.Combine(project.Directory, "data");
        await PlaceEarlierBaseTarballAsync(data);
        var imageDirectory = Path.Combine(data, image);
        project.Write($"data/{image}/injected_volumes/srv/seed/injected.txt", "injected\n");
        project.Write($"data/{image}/injected_volumes/srv/seed/overridden.txt", "injected\n");
        project.Write($"data/{image}/image_rootfs/srv/seed/overridden.txt", "image_rootfs\n");
        try
        {
            var first = await project.BuildAsync();
            Assert.IsTrue(first.Succeeded, first.Output);
            StringAssert.Contains(first.Output, $"MsDataDir: {data}/, the seed's ./data");
            StringAssert.Contains(first.Output, $"MsImageDir: {imageDirectory}/, the seed's $(MsDataDir)/$(MsImage)/");
            Assert.IsFalse(first.Output.Contains("creating the base tarball", StringComparison.Ordinal), "debootstrap ran: " + first.Output);
            Assert.AreEqual("injected\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/seed/injected.txt"));
            Assert.AreEqual("image_rootfs\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/seed/overridden.txt"));
            Assert.IsFalse(Directory.Exists(Path.Combine(project.Directory, "injected_volumes")), "the project folder was used as an image dir too");

            var second = await project.BuildAsync();
            Assert.IsTrue(second.Succeeded, second.Output);
            StringAssert.Contains(second.Output, "is up to date (inputs key");

            // The project folder gets a tree of its own: which one is meant is no longer clear, and the build says so.
            project.Write("injected_volumes/srv/other.txt", "other\n");
            var ambiguous = await project.BuildAsync();
            Assert.IsFalse(ambiguous.Succeeded);
            StringAssert.Contains(ambiguous.Output, "error MSI0024");
            StringAssert.Contains(ambiguous.Output, $"'{project.Directory}/'");
            StringAssert.Contains(ambiguous.Output, $"'{imageDirectory}/'");
            Assert.IsTrue((await project.BuildAsync($"-p:MsImageDir={imageDirectory}")) is { Succeeded: true } chosen && chosen.Output.Contains("is up to date (inputs key", StringComparison.Ordinal),
                "an explicit MsImageDir settles it");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Docker_args_ti_rm_and_e_MS_BASE_start_stage1_from_that_image()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var parent = UniqueImage("seed-parent");
        var child = UniqueImage("seed-child");
        using var parentProject = new ImageProject(parent);
        parentProject.Write("injected_volumes/srv/from-parent", "parent\n");
        using var childProject = new ImageProject(child);
        try
        {
            var parentBuild = await parentProject.BuildAsync();
            Assert.IsTrue(parentBuild.Succeeded, parentBuild.Output);
            var build = await DotnetBuild.RunAsync(childProject.ProjectFile, [$"-p:MsDockerArgs=\"-ti --rm -e MS_BASE={parent}:candidate\""], verbosity: "d");
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, $"Stage1: making {child}-stage1:latest from {parent}:candidate.");
            StringAssert.Contains(build.Output, "MsDockerArgs: -ti --rm left out: the SDK manages its stage containers");
            Assert.AreEqual("parent\n", await TestDocker.ReadFileFromImageAsync(docker, $"{child}:candidate", "/srv/from-parent"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, child);
            await TestDocker.RemoveProjectImagesAsync(docker, parent);
        }
    }

    [TestMethod]
    public async Task Stage3_writes_to_docker_data_reach_the_data_dir_not_the_candidate_and_the_sdk_files_stay_protected()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("seed-write");
        using var project = new ImageProject(image);
        var data = Path.Combine(project.Directory, "own-data");
        var tarball = await PlaceEarlierBaseTarballAsync(data);
        var length = new FileInfo(tarball).Length;
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            echo written-by-stage3 > /docker/data/out.txt
            mkdir -p /docker/data/reports && echo report > /docker/data/reports/r.txt
            # The base tarball is this test's own link: removing it would not harm the machine's cache.
            if rm -f /docker/data/baseimage-debian-bookworm.tar.xz 2>/dev/null; then echo "the base tarball was removed"; exit 1; fi
            if mv /docker/data/baseimage-debian-bookworm.tar.xz /docker/data/moved 2>/dev/null; then echo "the base tarball was renamed"; exit 1; fi
            if test -w /docker/data/baseimage-debian-bookworm.tar.xz; then echo "the base tarball is writable"; exit 1; fi
            if touch /docker/data/locks/probe 2>/dev/null; then echo "the locks are writable"; exit 1; fi
            """, executable: true);
        try
        {
            var build = await project.BuildAsync($"-p:MsDataDir={data}");
            Assert.IsTrue(build.Succeeded, build.Output);
            Assert.AreEqual("written-by-stage3\n", File.ReadAllText(Path.Combine(data, "out.txt")));
            Assert.AreEqual("report\n", File.ReadAllText(Path.Combine(data, "reports", "r.txt")));
            Assert.AreEqual(length, new FileInfo(tarball).Length);
            Assert.IsFalse(File.Exists(Path.Combine(data, "locks", "probe")));
            foreach (var path in new[] { "/docker/data/out.txt", "/run/makinastates/data/out.txt", "/docker/data/reports", "/run/makinastates/data/reports" })
            {
                Assert.IsNull(await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", path), $"{path} is in the candidate");
            }
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
