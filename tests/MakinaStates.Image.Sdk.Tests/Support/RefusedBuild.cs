namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>What a build refused by Stage0's validation leaves: nothing.</summary>
public static class RefusedBuild
{
    /// <summary>No build id drawn, no image dir laid out, no image made.</summary>
    public static async Task AssertNothingMadeAsync(DotnetBuild build, ImageProject project, Docker.DotNet.DockerClient docker)
    {
        Assert.IsNull(build.BuildId, "the build went past Stage0's validation");
        Assert.IsFalse(Directory.Exists(Path.Combine(project.Directory, "injected_volumes")), "Stage0 laid out the image dir");
        Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{project.Image}-stage1:latest"));
        Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{project.Image}:candidate"));
    }
}
