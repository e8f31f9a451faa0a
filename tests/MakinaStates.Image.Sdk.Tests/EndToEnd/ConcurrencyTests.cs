using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>Builds run in parallel in CI and IDEs: a shared base is made once, one image is built by one build at a time.</summary>
[TestClass]
public sealed class ConcurrencyTests
{
    [TestMethod]
    public async Task Parallel_solution_build_of_three_images_makes_the_shared_base_once()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        using var root = new ImageProject("makinastates/unused");
        var data = Path.Combine(root.Directory, "data");
        var images = Enumerable.Range(1, 3).Select(i => $"makinastates/test-parallel{i}-{Guid.NewGuid():N}"[..40]).ToArray();
        for (var i = 0; i < 3; i++)
        {
            root.Write($"image{i}/image{i}.msbuildproj", $"""
                <Project Sdk="MakinaStates.Image.Sdk/{Repository.SdkVersion}">
                  <PropertyGroup><MsImage>{images[i]}</MsImage></PropertyGroup>
                </Project>
                """);
            root.Write($"image{i}/injected_volumes/srv/which", $"image{i}\n");
        }
        HostProcess.RunIn(root.Directory, "dotnet", "new", "sln", "-n", "images", "--format", "sln");
        HostProcess.RunIn(root.Directory, "dotnet", "sln", "images.sln", "add", "image0/image0.msbuildproj", "image1/image1.msbuildproj", "image2/image2.msbuildproj");
        try
        {
            var build = await DotnetBuild.RunAsync(Path.Combine(root.Directory, "images.sln"), ["-m", $"-p:MsDataDir={data}"]);
            Assert.IsTrue(build.Succeeded, build.Output);
            Assert.AreEqual(1, Regex.Matches(build.Output, "creating the base tarball").Count, "the shared base must be made once");
            // debootstrap takes longer than 10 s: the build says it is still working at least every 10 s.
            StringAssert.Contains(build.Output, "stage0.sh still running");
            Assert.IsTrue(File.Exists(Path.Combine(data, "baseimage-debian-bookworm.tar.xz")));
            for (var i = 0; i < 3; i++)
            {
                Assert.AreEqual($"image{i}\n", await TestDocker.ReadFileFromImageAsync(docker, $"{images[i]}:candidate", "/srv/which"));
            }
        }
        finally
        {
            foreach (var image in images)
            {
                await TestDocker.RemoveProjectImagesAsync(docker, image);
            }
            await TestDocker.RemoveBaseImportsOfAsync(docker, data);
        }
    }

    [TestMethod]
    public async Task Two_builds_of_one_image_at_once_take_turns()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-same-image-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\nsleep 3\necho \"$MS_STAGE2_NAME\" > /srv/built-by\n", executable: true);
        try
        {
            await using var first = DotnetBuild.Running.Start(project.ProjectFile);
            await using var second = DotnetBuild.Running.Start(project.ProjectFile);
            var results = await Task.WhenAll(first.CompleteAsync(TimeSpan.FromMinutes(5)), second.CompleteAsync(TimeSpan.FromMinutes(5)));
            Assert.IsTrue(results[0].Succeeded, results[0].Output);
            Assert.IsTrue(results[1].Succeeded, results[1].Output);
            Assert.IsTrue(results.Any(r => r.Output.Contains("another build holds the lock for image", StringComparison.Ordinal)),
                "neither build waited for the other");
            var builtBy = (await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/built-by"))?.Trim();
            Assert.IsTrue(results.Any(r => r.Output.Contains(builtBy!, StringComparison.Ordinal)), "the candidate is not one build's whole work");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

}
