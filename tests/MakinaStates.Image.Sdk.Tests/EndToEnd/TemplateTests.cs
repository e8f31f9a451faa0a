using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// `dotnet new msimage` from the packed template package (artifacts/feed), installed in a hive of the test's own: what a
/// new user starts from, and what a makina-states user's seed tree gets. The projects resolve the SDK from the feed as
/// a project outside this repository does (a nuget.config naming it above them, or the one --sdk-feed writes).
/// </summary>
[TestClass]
public sealed class TemplateTests
{
    [TestMethod]
    public async Task New_project_has_its_tree_gitignore_and_stage3_and_names_no_feed_unless_asked()
    {
        using var hive = await TemplateHive.InstallAsync();
        var root = Directory.CreateTempSubdirectory("msimage-template-test-").FullName;
        try
        {
            var created = await hive.NewImageProjectAsync(root, "-n", "My.Image");
            Assert.IsTrue(created.Succeeded, created.Output);
            var project = Path.Combine(root, "My.Image");
            var projectFile = File.ReadAllText(Path.Combine(project, "My.Image.proj"));
            StringAssert.Contains(projectFile, $"""<Project Sdk="MakinaStates.Image.Sdk/{Repository.SdkVersion}">""");
            StringAssert.Contains(projectFile, "<MsImage>my.image</MsImage>", "an image repository is lower case");
            Assert.IsFalse(projectFile.Contains("MsImageDir", StringComparison.Ordinal), projectFile);
            var ignored = File.ReadAllLines(Path.Combine(project, ".gitignore"));
            CollectionAssert.IsSubsetOf(new[] { "obj/", "injected_volumes/bootstrap_scripts/" }, ignored);
            StringAssert.Contains(File.ReadAllText(Path.Combine(project, "image_rootfs", "bootstrap_scripts", "stage3.sh")),
                "test -f /usr/local/share/doc/my.image/README");
            Assert.IsTrue(File.Exists(Path.Combine(project, "injected_volumes", "usr", "local", "share", "doc", "my.image", "README")));
            Assert.IsFalse(File.Exists(Path.Combine(project, "nuget.config")), "inside a tree whose nuget.config names the feed, none is needed");

            var feed = "https://packages.example.invalid/makinastates/index.json";
            var withFeed = await hive.NewImageProjectAsync(root, "-n", "fed", "--sdk-feed", feed);
            Assert.IsTrue(withFeed.Succeeded, withFeed.Output);
            StringAssert.Contains(File.ReadAllText(Path.Combine(root, "fed", "nuget.config")), $"""<add key="makinastates-image-sdk" value="{feed}" />""");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestMethod]
    public async Task New_project_builds_its_candidate()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        using var hive = await TemplateHive.InstallAsync();
        var name = $"makinastates-test-template-{Guid.NewGuid():N}"[..40];
        var root = Directory.CreateTempSubdirectory("msimage-template-test-").FullName;
        try
        {
            ImageProject.WriteNugetConfig(root);
            var created = await hive.NewImageProjectAsync(root, "-n", name);
            Assert.IsTrue(created.Succeeded, created.Output);
            var build = await DotnetBuild.RunAsync(Path.Combine(root, name, $"{name}.proj"));
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "stage3: " + name + " is ready", "the template's stage3.sh ran and its self-check passed");
            StringAssert.Contains(build.Output, $"Check image tag: {name}:candidate");
            StringAssert.Contains(await TestDocker.ReadFileFromImageAsync(docker, $"{name}:candidate", $"/usr/local/share/doc/{name}/README") ?? "",
                "copied to / of the image");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, name);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>A makina-states checkout: data/&lt;org&gt;/&lt;image&gt;/ with its tree; the project made beside data/ builds it as it is.</summary>
    [TestMethod]
    public async Task Seed_image_dir_project_builds_that_tree_unchanged()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        using var hive = await TemplateHive.InstallAsync();
        var image = $"test-seed-{Guid.NewGuid():N}"[..24];
        var root = Directory.CreateTempSubdirectory("msimage-template-seed-").FullName;
        try
        {
            ImageProject.WriteNugetConfig(root);
            var seed = Path.Combine(root, "data", "makinastates", image);
            Directory.CreateDirectory(Path.Combine(seed, "injected_volumes", "srv"));
            File.WriteAllText(Path.Combine(seed, "injected_volumes", "srv", "from-seed.txt"), "injected from the seed tree\n");
            Directory.CreateDirectory(Path.Combine(seed, "image_rootfs", "bootstrap_scripts"));
            File.WriteAllText(Path.Combine(seed, "image_rootfs", "bootstrap_scripts", "stage3.sh"), "#!/bin/bash\nset -e\necho \"seed stage3 sees $(cat /srv/from-seed.txt)\"\n");

            var created = await hive.NewImageProjectAsync(root, "--seed-image-dir", $"data/makinastates/{image}");
            Assert.IsTrue(created.Succeeded, created.Output);
            var projectFile = Directory.GetFiles(root, "*.proj").Single();
            StringAssert.Contains(File.ReadAllText(projectFile), $"<MsImageDir>data/makinastates/{image}</MsImageDir>");
            Assert.IsFalse(Directory.Exists(Path.Combine(root, "injected_volumes")), "the seed's tree is the image's: the project adds none");
            Assert.IsFalse(Directory.Exists(Path.Combine(root, "image_rootfs")));

            var build = await DotnetBuild.RunAsync(projectFile);
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "seed stage3 sees injected from the seed tree", "the seed's own stage3.sh ran");
            StringAssert.Contains(build.Output, $"Check image tag: makinastates/{image}:candidate");
            Assert.AreEqual("injected from the seed tree\n", await TestDocker.ReadFileFromImageAsync(docker, $"makinastates/{image}:candidate", "/srv/from-seed.txt"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, $"makinastates/{image}");
            Directory.Delete(root, recursive: true);
        }
    }
}
