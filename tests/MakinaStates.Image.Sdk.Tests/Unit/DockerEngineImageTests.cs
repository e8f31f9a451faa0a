using System.Formats.Tar;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// DockerEngine's image helpers, against the real engine: its status codes and tags are what they are about.
/// </summary>
[TestClass]
public sealed class DockerEngineImageTests
{
    /// <summary>The one tidy-up removal: gone (404) and still needed (409) are fine, any other engine error is thrown.</summary>
    [TestMethod]
    public async Task RemoveImageIfPresent_tolerates_absent_and_in_use_and_throws_any_other_engine_error()
    {
        using var docker = await TestDocker.RequireEngineAsync();
        using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        var reference = await ImportTinyImageAsync(docker, "test-removal");
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

    /// <summary>Commit under a build-private tag, then the real tag; the private tag never outlives the call.</summary>
    [TestMethod]
    public async Task CommitUnderTemporaryTag_tags_only_a_complete_commit_and_drops_the_private_tag()
    {
        using var docker = await TestDocker.RequireEngineAsync();
        using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        var previous = await ImportTinyImageAsync(docker, "test-commit");
        var repository = previous[..previous.LastIndexOf(':')];
        var buildId = Guid.NewGuid().ToString("N");
        var privateTag = $"{repository}:build-{buildId}";
        var previousId = (await docker.Images.InspectImageAsync(previous)).ID;
        var container = (await docker.Containers.CreateContainerAsync(new CreateContainerParameters { Image = previous })).ID;
        try
        {
            await Assert.ThrowsAsync<DockerApiException>(() => engine.CommitUnderTemporaryTagAsync(
                new CommitContainerChangesParameters { ContainerID = "no-such-container-" + buildId }, previous, buildId, CancellationToken.None));
            Assert.AreEqual(previousId, (await docker.Images.InspectImageAsync(previous)).ID, "a failed commit leaves the real tag alone");

            var commit = await engine.CommitUnderTemporaryTagAsync(
                new CommitContainerChangesParameters { ContainerID = container, Labels = new Dictionary<string, string> { ["test"] = buildId } },
                previous, buildId, CancellationToken.None);

            var tagged = await docker.Images.InspectImageAsync(previous);
            Assert.AreEqual(commit.ID, tagged.ID, "the real tag names the new commit");
            Assert.AreNotEqual(previousId, tagged.ID);
            Assert.AreEqual(buildId, tagged.Config!.Labels!["test"]);
            Assert.IsNull(await engine.TryInspectImageAsync(privateTag, CancellationToken.None), "the build-private tag is gone");
        }
        finally
        {
            await TestDocker.RemoveContainerAsync(docker, container);
            await TestDocker.RemoveImageAsync(docker, privateTag);
            await TestDocker.RemoveImageAsync(docker, previous);
            await TestDocker.RemoveImageAsync(docker, previousId);
        }
    }

    /// <summary>An image of one small file, under a fresh tag of makinastates/<paramref name="name"/>.</summary>
    private static async Task<string> ImportTinyImageAsync(DockerClient docker, string name)
    {
        var reference = $"makinastates/{name}:{Guid.NewGuid():N}";
        using var layer = new MemoryStream();
        using (var writer = new TarWriter(layer, TarEntryFormat.Pax, leaveOpen: true))
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "marker") { DataStream = new MemoryStream("x\n"u8.ToArray()), Mode = (UnixFileMode)0x1A4 });
        }
        layer.Position = 0;
        await docker.Images.CreateImageAsync(new ImagesCreateParameters { FromSrc = "-", Repo = reference, Changes = ["CMD [\"/marker\"]"] },
            layer, null, new Progress<JSONMessage>());
        return reference;
    }
}
