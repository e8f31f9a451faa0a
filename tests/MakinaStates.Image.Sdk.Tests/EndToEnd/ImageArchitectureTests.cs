using System.Formats.Tar;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Docker 20.10's import records the engine's architecture whatever the files are for: the SDK saves the import,
/// gives its config the platform, and loads it back under the same name, layers unchanged.
/// </summary>
[TestClass]
public sealed class ImageArchitectureTests
{
    [TestMethod]
    public async Task An_import_gets_the_platform_its_files_are_for_with_its_layers_unchanged()
    {
        using var docker = await TestDocker.RequireEngineAsync();
        using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        var reference = $"makinastates/test-architecture:{Guid.NewGuid():N}";
        var (repository, tag) = ImageReference.SplitTag(reference);
        using var layer = new MemoryStream();
        using (var writer = new TarWriter(layer, TarEntryFormat.Pax, leaveOpen: true))
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "etc/") { Mode = (UnixFileMode)0x1ED });
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "etc/which-arch") { DataStream = new MemoryStream("arm64\n"u8.ToArray()), Mode = (UnixFileMode)0x1A4 });
        }
        layer.Position = 0;
        await docker.Images.CreateImageAsync(new ImagesCreateParameters { FromSrc = "-", Repo = reference }, layer, null, new Progress<JSONMessage>());
        string? before = null;
        try
        {
            var imported = await docker.Images.InspectImageAsync(reference);
            before = imported.ID;
            Assert.AreEqual("amd64", imported.Architecture, "the engine's import records its own architecture (the reason for this code)");
            var arm64 = ImagePlatform.Parse("linux/arm64", "MsPlatform");
            var messages = new List<string>();
            var id = await ImageArchitecture.EnsureAsync(engine, reference, arm64, messages.Add, CancellationToken.None);
            var loaded = await docker.Images.InspectImageAsync(reference);
            Assert.AreEqual(id, loaded.ID);
            Assert.AreNotEqual(before, loaded.ID, "a new config, so a new image id");
            Assert.AreEqual("arm64", loaded.Architecture);
            Assert.AreEqual("linux", loaded.Os);
            CollectionAssert.AreEqual(imported.RootFS!.Layers!.ToList(), loaded.RootFS!.Layers!.ToList(), "the layers pass through unchanged");
            Assert.AreEqual("/sbin/init", loaded.Config?.Cmd?.FirstOrDefault() ?? "/sbin/init", "the rest of the config is kept");
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, before), "the import as the engine made it is gone");
            Assert.AreEqual(1, messages.Count);
            // Already right: nothing to do.
            Assert.AreEqual(id, await ImageArchitecture.EnsureAsync(engine, reference, arm64, messages.Add, CancellationToken.None));
            Assert.AreEqual(1, messages.Count);
        }
        finally
        {
            await TestDocker.RemoveImageAsync(docker, reference);
            if (before is not null)
            {
                await TestDocker.RemoveImageAsync(docker, before);
            }
        }
    }
}
