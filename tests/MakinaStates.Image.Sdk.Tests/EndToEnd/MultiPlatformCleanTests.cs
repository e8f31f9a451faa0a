using Docker.DotNet;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// `dotnet build -t:Clean -p:MsCleanImages=true` of a project with several platforms: a build of its own (made in the
/// class setup, the arm64 base tarball of the data dir shared with the other arm64 builds of the run), so that it does
/// not depend on running after the other multi-platform tests.
/// </summary>
[TestClass]
public sealed class MultiPlatformCleanTests
{
    private static readonly string Image = $"makinastates/multi-clean-{Guid.NewGuid():N}"[..40];
    private static readonly string[] References = [$"{Image}:candidate", $"{Image}:candidate-arm64", $"{Image}-stage1:latest", $"{Image}-stage1:arm64"];
    private static ImageProject? s_project;
    private static DockerClient? s_docker;
    private static DotnetBuild? s_build;

    [ClassInitialize]
    public static async Task BuildBothPlatforms(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_docker = await TestDocker.RequireEngineAsync();
        HostEmulation.RequireArm64();
        s_project = new ImageProject(Image, "<PropertyGroup><MsPlatforms>linux/amd64;linux/arm64</MsPlatforms></PropertyGroup>");
        s_build = await s_project.BuildAsync();
    }

    [ClassCleanup]
    public static async Task RemoveImages()
    {
        if (s_docker is not null)
        {
            foreach (var reference in References)
            {
                await TestDocker.RemoveImageAsync(s_docker, reference);
            }
            s_docker.Dispose();
        }
        s_project?.Dispose();
    }

    [TestMethod]
    public async Task Clean_with_MsCleanImages_removes_every_platforms_images()
    {
        Assert.IsNotNull(s_build);
        Assert.IsTrue(s_build.Succeeded, s_build.Output);
        foreach (var reference in References)
        {
            Assert.IsNotNull(await TestDocker.ImageIdAsync(s_docker!, reference), $"the build made no {reference}");
        }
        var clean = await DotnetBuild.RunAsync(s_project!.ProjectFile, ["-t:Clean", "-p:MsCleanImages=true"]);
        Assert.IsTrue(clean.Succeeded, clean.Output);
        foreach (var reference in References)
        {
            Assert.IsNull(await TestDocker.ImageIdAsync(s_docker!, reference), $"{reference} stays after the clean");
        }
        Assert.IsFalse(Directory.Exists(Path.Combine(s_project.Directory, "obj", "msimage")));
    }
}
