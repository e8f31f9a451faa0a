using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MsPush=true on Podman: the candidate and a promoted tag reach the tests' local registry, and the digests the SDK
/// returns are the ones the registry serves (Podman states them only in a status line, not in the push's aux data).
/// </summary>
[TestClass]
public sealed class PodmanPushTests
{
    [TestMethod]
    public async Task The_candidate_and_a_tag_are_pushed_and_the_returned_digest_is_the_registrys()
    {
        Repository.RequirePackedSdk();
        (await TestDocker.RequireEngineAsync()).Dispose();
        using var registry = await LocalRegistry.StartAsync();
        // Its own service: this one runs in the host's network to reach the registry on 127.0.0.1.
        await using var podman = await PodmanService.StartAsync(insecureRegistry: registry.Address);
        using var client = podman.Connect();
        var image = $"makinastates/test-podman-push-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        try
        {
            // No network for the stage containers: a bridge of its own would be made in the host's network.
            var build = await project.BuildAsync($"-p:MsDockerHost={podman.Host}", "-p:MsDockerArgs=--network none",
                "-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=1.0");
            Assert.IsTrue(build.Succeeded, build.Output);
            foreach (var tag in new[] { "candidate", "1.0" })
            {
                var (status, served, body) = await registry.GetManifestAsync(image, tag);
                Assert.AreEqual(System.Net.HttpStatusCode.OK, status, tag);
                StringAssert.Contains(build.Output, $"Pushed {registry.Address}/{image}:{tag}@{served}");
                Assert.AreEqual(served, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body)));
            }
            Assert.AreEqual(0, (await TestDocker.ContainersWithLabelAsync(client, $"io.makinastates.image={image}")).Count);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(client, image);
        }
    }
}
