using System.Formats.Tar;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// The one tidy-up removal of an image: gone (404) and still needed (409) are fine, any other engine error is thrown,
/// not swallowed. Against the real engine: its status codes are what the rule is about.
/// </summary>
[TestClass]
public sealed class RemoveImageIfPresentTests
{
    [TestMethod]
    public async Task Removes_tolerates_absent_and_in_use_and_throws_any_other_engine_error()
    {
        using var docker = await TestDocker.RequireEngineAsync();
        using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        var reference = $"makinastates/test-removal:{Guid.NewGuid():N}";
        using var layer = new MemoryStream();
        using (var writer = new TarWriter(layer, TarEntryFormat.Pax, leaveOpen: true))
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "marker") { DataStream = new MemoryStream("x\n"u8.ToArray()), Mode = (UnixFileMode)0x1A4 });
        }
        layer.Position = 0;
        await docker.Images.CreateImageAsync(new ImagesCreateParameters { FromSrc = "-", Repo = reference, Changes = ["CMD [\"/marker\"]"] },
            layer, null, new Progress<JSONMessage>());
        string? container = null;
        try
        {
            var id = (await docker.Images.InspectImageAsync(reference)).ID;
            container = (await docker.Containers.CreateContainerAsync(new CreateContainerParameters { Image = id })).ID;
            Assert.AreEqual(ImageRemoval.InUse, await engine.RemoveImageIfPresentAsync(id, CancellationToken.None), "409: a container uses it");
            Assert.IsNotNull(await engine.TryInspectImageAsync(id, CancellationToken.None), "kept");

            var refused = await Assert.ThrowsExactlyAsync<DockerApiException>(() => engine.RemoveImageIfPresentAsync("Not A Reference!", CancellationToken.None));
            Assert.AreEqual(System.Net.HttpStatusCode.BadRequest, refused.StatusCode, "an engine error other than 404/409 reaches the caller");

            await engine.RemoveContainerAsync(container, CancellationToken.None);
            container = null;
            Assert.AreEqual(ImageRemoval.Removed, await engine.RemoveImageIfPresentAsync(reference, CancellationToken.None));
            Assert.IsNull(await engine.TryInspectImageAsync(id, CancellationToken.None), "the only tag removed: the image is gone");
            Assert.AreEqual(ImageRemoval.Absent, await engine.RemoveImageIfPresentAsync(reference, CancellationToken.None), "404: already gone");
        }
        finally
        {
            if (container is not null)
            {
                await TestDocker.RemoveContainerAsync(docker, container);
            }
            await TestDocker.RemoveImageAsync(docker, reference);
        }
    }
}
