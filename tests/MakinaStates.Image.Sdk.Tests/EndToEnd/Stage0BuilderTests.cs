using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The stage0 builder path: Dockerfile.stage0 built as MsStage0Tag, stage0.sh (debootstrap) run inside it, the
/// tarball copied out. No registry is reachable, so the Dockerfile's FROM is an image this test imports.
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

    [TestMethod]
    public async Task Base_is_made_in_the_builder_which_is_reused_replaced_and_skippable()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();

        var image = $"makinastates/test-builder-{Guid.NewGuid():N}"[..40];
        var builderTag = $"{image}-stage0:latest";
        using var project = new ImageProject(image);
        var dockerfile = project.Write("Dockerfile.stage0", $"""
            FROM {FromImage}
            RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap xz-utils && rm -rf /var/lib/apt/lists/*
            """);
        var data = Path.Combine(project.Directory, "data");
        var tarball = Path.Combine(data, "baseimage-debian-bookworm.tar.xz");
        var fastStagePath = Directory.CreateDirectory(Path.Combine(project.Directory, "fast")).FullName;
        project.Write("fast/stage0.sh", FastStage0, executable: true);
        string[] Common(params string[] more) => [$"-p:MsDataDir={data}", "-p:MsBaseBuilder=container", $"-p:MsDockerfileStage0={dockerfile}", .. more];
        // Each remade base is imported: an import a later base replaced stays while images build on it, so every
        // import the builds name is removed at the end, not only the last one recorded in the data dir.
        var imports = new HashSet<string>(StringComparer.Ordinal);
        async Task<DotnetBuild> BuildAsync(params string[] arguments)
        {
            var build = await project.BuildAsync(arguments);
            imports.UnionWith(System.Text.RegularExpressions.Regex.Matches(build.Output, @"makinastates/base-debian-bookworm:[0-9a-f]{16}\b").Select(m => m.Value));
            return build;
        }
        // The FROM image is this test's when it imports it: removed at the end then, kept when it was there before.
        var fromWasThere = await TestDocker.ImageIdAsync(docker, FromImage) is not null;
        try
        {
            await EnsureFromImageAsync(docker);

            // 1. The real stage0.sh: debootstrap inside the unprivileged builder container.
            var first = await BuildAsync(Common());
            Assert.IsTrue(first.Succeeded, first.Output);
            StringAssert.Contains(first.Output, "in the stage0 builder");
            Assert.IsTrue(File.Exists(tarball), "the base tarball was not copied out of the builder");
            Assert.IsFalse(Directory.GetFiles(data).Any(f => f.Contains(".partial", StringComparison.Ordinal) || Concurrency.AtomicFile.IsTemporary(f)),
                "a partial tarball was left");
            var builder = await docker.Images.InspectImageAsync(builderTag);
            Assert.IsTrue(builder.Config!.Labels!.ContainsKey("io.makinastates.stage0-key"));

            // 2. MsRebuildBase remakes the tarball (here with a fast stage0.sh from MsStagePath); the builder is reused.
            var second = await BuildAsync(Common("-p:MsRebuildBase=true", $"-p:MsStagePath={fastStagePath}"));
            Assert.IsTrue(second.Succeeded, second.Output);
            StringAssert.Contains(second.Output, "is up to date, reused");
            Assert.AreEqual(builder.ID, (await docker.Images.InspectImageAsync(builderTag)).ID);
            Assert.AreEqual("fast-stage0\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/etc/made-by-fast-stage0"));

            // 3. A changed Dockerfile replaces the builder and removes the old one.
            File.AppendAllText(dockerfile, "\nLABEL makinastates.test=changed\n");
            var third = await BuildAsync(Common("-p:MsRebuildBase=true", $"-p:MsStagePath={fastStagePath}"));
            Assert.IsTrue(third.Succeeded, third.Output);
            var replaced = await docker.Images.InspectImageAsync(builderTag);
            Assert.AreNotEqual(builder.ID, replaced.ID);
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, builder.ID), "the old builder image was not removed");

            // 4. MsSkipStage0Build uses the builder as it is, and says so when it is missing.
            var skipped = await BuildAsync(Common("-p:MsRebuildBase=true", "-p:MsSkipStage0Build=yes", "-p:MsStage0Tag=makinastates/no-such-builder:1"));
            Assert.IsFalse(skipped.Succeeded);
            StringAssert.Contains(skipped.Output, "error MSI1006");
            StringAssert.Contains(skipped.Output, "makinastates/no-such-builder:1");
            Assert.IsTrue(File.Exists(tarball), "a failed rebuild must keep the existing tarball");
            await TestDocker.AssertNoStageContainerAsync(docker, image);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
            await TestDocker.RemoveImageAsync(docker, builderTag);
            await TestDocker.RemoveBaseImportsOfAsync(docker, data);
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
