using System.Text.Json;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

[TestClass]
public sealed class BuildImageResultTests
{
    [TestMethod]
    public async Task BuildImage_returns_the_candidate_item_with_its_image_id()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-result-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        try
        {
            // -getTargetResult prints the target's returned items as JSON (MSBuild 17.8+).
            var build = await DotnetBuild.RunAsync(project.ProjectFile, ["-t:BuildImage", "-getTargetResult:BuildImage"]);
            Assert.IsTrue(build.Succeeded, build.Output);
            var json = build.Output[build.Output.IndexOf('{')..(build.Output.LastIndexOf('}') + 1)];
            using var document = JsonDocument.Parse(json);
            var result = document.RootElement.GetProperty("TargetResults").GetProperty("BuildImage");
            Assert.AreEqual("Success", result.GetProperty("Result").GetString());
            var item = result.GetProperty("Items").EnumerateArray().Single();
            Assert.AreEqual($"{image}:candidate", item.GetProperty("Identity").GetString());
            Assert.AreEqual(await TestDocker.ImageIdAsync(docker, $"{image}:candidate"), item.GetProperty("ImageId").GetString());
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
