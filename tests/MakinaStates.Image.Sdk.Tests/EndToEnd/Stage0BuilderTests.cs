using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The stage0 builder path: Dockerfile.stage0 built as the shared builder (or MsStage0Tag), stage0.sh (debootstrap)
/// run inside it, the tarball copied out. No registry is reachable, so the Dockerfile's FROM is an image this test imports.
/// </summary>
[TestClass]
public sealed class Stage0BuilderTests
{
    private const string FromImage = "makinastates/test-stage0-from:latest";

    private static string DefaultBaseTarball =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "makinastates-image", "baseimage-debian-bookworm.tar.xz");

    /// <summary>A fast stand-in for stage0.sh: packs the builder's own root file system (itself a Debian base).</summary>
    private const string FastStage0 = """
        #!/bin/bash
        set -euo pipefail
        mkdir -p "$MS_DATA_DIR"
        echo fast-stage0 > /etc/made-by-fast-stage0
        tar -C / --numeric-owner --one-file-system --exclude=./proc --exclude=./sys --exclude=./dev --exclude=./docker -cf - . \
          | xz -T0 -0 > "$MS_DATA_DIR/$MS_BASEIMAGE.tmp"
        mv "$MS_DATA_DIR/$MS_BASEIMAGE.tmp" "$MS_DATA_DIR/$MS_BASEIMAGE"
        """;

    /// <summary>The default builder's name: shared by every project on the engine, named after the Dockerfile's content.</summary>
    private static string SharedBuilderTag(string dockerfile) =>
        $"makinastates/stage0-debian-bookworm:{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(dockerfile)))[..16]}";

    private static async Task<IList<ImagesListResponse>> BuildersOfAsync(Docker.DotNet.DockerClient docker, string dockerfile) =>
        await docker.Images.ListImagesAsync(new ImagesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool>
                {
                    [$"io.makinastates.stage0-key={Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(dockerfile)))}"] = true,
                },
            },
        });

    [TestMethod]
    public async Task Base_is_made_in_the_builder_that_two_projects_share_a_changed_Dockerfile_gets_its_own_a_named_one_is_replaced()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();

        var image = $"makinastates/test-builder-{Guid.NewGuid():N}"[..40];
        var otherImage = $"makinastates/test-builder-b-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        using var otherProject = new ImageProject(otherImage);
        var dockerfileContent = $"""
            FROM {FromImage}
            RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap xz-utils && rm -rf /var/lib/apt/lists/*
            """;
        var dockerfile = project.Write("Dockerfile.stage0", dockerfileContent);
        // The other project's own copy: the builder is found by content, not by path or project.
        var otherDockerfile = otherProject.Write("Dockerfile.stage0", dockerfileContent);
        var builderTag = SharedBuilderTag(dockerfile);
        var namedTag = $"{image}-stage0:latest";
        var data = Path.Combine(project.Directory, "data");
        var otherData = Path.Combine(otherProject.Directory, "data");
        var tarball = Path.Combine(data, "baseimage-debian-bookworm.tar.xz");
        var fastStagePath = Directory.CreateDirectory(Path.Combine(project.Directory, "fast")).FullName;
        project.Write("fast/stage0.sh", FastStage0, executable: true);
        string[] Common(params string[] more) => [$"-p:MsDataDir={data}", "-p:MsBaseBuilder=container", $"-p:MsDockerfileStage0={dockerfile}", .. more];
        // Each remade base is imported: an import a later base replaced stays while images build on it, so every
        // import the builds name is removed at the end, not only the last one recorded in the data dir.
        var imports = new HashSet<string>(StringComparer.Ordinal);
        async Task<DotnetBuild> BuildAsync(ImageProject of, params string[] arguments)
        {
            var build = await of.BuildAsync(arguments);
            imports.UnionWith(System.Text.RegularExpressions.Regex.Matches(build.Output, @"makinastates/base-debian-bookworm:[0-9a-f]{16}\b").Select(m => m.Value));
            return build;
        }
        // The FROM image and the shared builder are this test's when it makes them: removed at the end then, kept
        // when they were there before (another build on this engine uses them).
        var fromWasThere = await TestDocker.ImageIdAsync(docker, FromImage) is not null;
        var builderWasThere = await TestDocker.ImageIdAsync(docker, builderTag) is not null;
        var changedBuilderTag = "";
        try
        {
            await EnsureFromImageAsync(docker);

            // 1. The real stage0.sh: debootstrap inside the unprivileged builder container, the builder the shared one.
            var first = await BuildAsync(project, Common());
            Assert.IsTrue(first.Succeeded, first.Output);
            StringAssert.Contains(first.Output, $"in the stage0 builder {builderTag}");
            Assert.IsTrue(File.Exists(tarball), "the base tarball was not copied out of the builder");
            Assert.IsFalse(Directory.GetFiles(data).Any(f => f.Contains(".partial", StringComparison.Ordinal) || Concurrency.AtomicFile.IsTemporary(f)),
                "a partial tarball was left");
            var builder = await docker.Images.InspectImageAsync(builderTag);
            Assert.IsTrue(builder.Config!.Labels!.ContainsKey("io.makinastates.stage0-key"));

            // 2. Another image project, with its own data dir (its base made in the builder, here by a fast stage0.sh
            //    from MsStagePath) and its own copy of the Dockerfile: the same builder, reused, and no other made.
            var other = await BuildAsync(otherProject, $"-p:MsDataDir={otherData}", "-p:MsBaseBuilder=container",
                $"-p:MsDockerfileStage0={otherDockerfile}", $"-p:MsStagePath={fastStagePath}");
            Assert.IsTrue(other.Succeeded, other.Output);
            StringAssert.Contains(other.Output, $"stage0 builder {builderTag} is up to date, reused");
            Assert.AreEqual(builder.ID, (await docker.Images.InspectImageAsync(builderTag)).ID);
            Assert.AreEqual(1, (await BuildersOfAsync(docker, dockerfile)).Count, "one builder for the two projects");
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{otherImage}-stage0:latest"), "a builder of the project's own was made");
            Assert.AreEqual("fast-stage0\n", await TestDocker.ReadFileFromImageAsync(docker, $"{otherImage}:candidate", "/etc/made-by-fast-stage0"));

            // 3. A changed Dockerfile gets its own builder; the first stays, for the projects that still use it.
            File.AppendAllText(dockerfile, "\nLABEL makinastates.test=changed\n");
            changedBuilderTag = SharedBuilderTag(dockerfile);
            var third = await BuildAsync(project, Common("-p:MsRebuildBase=true", $"-p:MsStagePath={fastStagePath}"));
            Assert.IsTrue(third.Succeeded, third.Output);
            Assert.AreNotEqual(builderTag, changedBuilderTag);
            Assert.AreNotEqual(builder.ID, (await docker.Images.InspectImageAsync(changedBuilderTag)).ID);
            Assert.AreEqual(builder.ID, await TestDocker.ImageIdAsync(docker, builderTag), "the other projects' builder was removed");

            // 4. MsStage0Tag names another builder, rebuilt in place when its Dockerfile changes (the old one removed).
            var named = await BuildAsync(project, Common("-p:MsRebuildBase=true", $"-p:MsStagePath={fastStagePath}", $"-p:MsStage0Tag={namedTag}"));
            Assert.IsTrue(named.Succeeded, named.Output);
            StringAssert.Contains(named.Output, $"in the stage0 builder {namedTag}");
            var namedBuilder = await docker.Images.InspectImageAsync(namedTag);
            File.AppendAllText(dockerfile, "\nLABEL makinastates.test=changed-again\n");
            var renamed = await BuildAsync(project, Common("-p:MsRebuildBase=true", $"-p:MsStagePath={fastStagePath}", $"-p:MsStage0Tag={namedTag}"));
            Assert.IsTrue(renamed.Succeeded, renamed.Output);
            Assert.AreNotEqual(namedBuilder.ID, (await docker.Images.InspectImageAsync(namedTag)).ID);
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, namedBuilder.ID), "the old named builder was not removed");

            // 5. MsSkipStage0Build uses the builder as it is, and says so when it is missing.
            var skipped = await BuildAsync(project, Common("-p:MsRebuildBase=true", "-p:MsSkipStage0Build=yes", "-p:MsStage0Tag=makinastates/no-such-builder:1"));
            Assert.IsFalse(skipped.Succeeded);
            StringAssert.Contains(skipped.Output, "error MSI1006");
            StringAssert.Contains(skipped.Output, "makinastates/no-such-builder:1");
            Assert.IsTrue(File.Exists(tarball), "a failed rebuild must keep the existing tarball");
            await TestDocker.AssertNoStageContainerAsync(docker, image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
            await TestDocker.RemoveProjectImagesAsync(docker, otherImage);
            await TestDocker.RemoveImageAsync(docker, namedTag);
            if (changedBuilderTag.Length > 0)
            {
                // Its content is this test's alone (the label it appends).
                await TestDocker.RemoveImageAsync(docker, changedBuilderTag);
            }
            if (!builderWasThere)
            {
                await TestDocker.RemoveImageAsync(docker, builderTag);
            }
            await TestDocker.RemoveBaseImportsOfAsync(docker, data);
            await TestDocker.RemoveBaseImportsOfAsync(docker, otherData);
            foreach (var import in imports)
            {
                await TestDocker.RemoveImageAsync(docker, import);
            }
            if (!fromWasThere)
            {
                await TestDocker.RemoveImageAsync(docker, FromImage);
            }
        }
    }

    [TestMethod]
    public async Task A_missing_MsDockerfileStage0_is_MSI0008_before_the_engine_is_reached()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject("makinastates/test-no-stage0-dockerfile");
        var missing = Path.Combine(project.Directory, "no-such.Dockerfile");
        // The builder is named after the Dockerfile's content, so Stage0 reads it first: an engine that does not exist
        // is never reached.
        var build = await project.BuildAsync($"-p:MsDockerfileStage0={missing}", "-p:MsDockerHost=unix:///nonexistent/docker.sock");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0008");
        StringAssert.Contains(build.Output, $"MsDockerfileStage0 names '{missing}', which does not exist");
        Assert.IsFalse(build.Output.Contains("MSI0101", StringComparison.Ordinal), build.Output);
    }

    /// <summary>Imports the OS base tarball of the shared data dir (made by a plain build if missing).</summary>
    private static async Task EnsureFromImageAsync(Docker.DotNet.DockerClient docker)
    {
        if (await TestDocker.ImageIdAsync(docker, FromImage) is not null)
        {
            return;
        }
        if (!File.Exists(DefaultBaseTarball))
        {
            using var seed = new ImageProject($"makinastates/test-seed-base-{Guid.NewGuid():N}"[..40]);
            var build = await seed.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            await TestDocker.RemoveProjectImagesAsync(docker, seed.Image);
        }
        await using var tarball = File.OpenRead(DefaultBaseTarball);
        await docker.Images.CreateImageAsync(new ImagesCreateParameters { FromSrc = "-", Repo = "makinastates/test-stage0-from", Tag = "latest" },
            tarball, null, new Progress<JSONMessage>());
        Assert.IsNotNull(await TestDocker.ImageIdAsync(docker, FromImage));
    }
}
