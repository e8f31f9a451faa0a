using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>samples/dotnet-service: an app project referenced by the image project is published into it and run by systemd.</summary>
[TestClass]
public sealed class DotnetServiceSampleTests
{
    [TestMethod]
    public async Task Referenced_app_is_published_into_the_image_and_answers_from_the_booted_candidate()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        // The sample unchanged, under a name of this run: with its own name an up-to-date candidate already on the
        // engine would skip stage3 and its self-check line.
        var image = $"makinastates/test-dotnet-service-{Guid.NewGuid():N}"[..48];
        string? container = null;
        try
        {
            var build = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "dotnet-service", "dotnet-service.proj"), [$"-p:MsImage={image}"]);
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "dotnet-service answers on port 8081");
            container = await TestDocker.BootAsync(docker, $"{image}:candidate", $"dotnet-service-test-{Guid.NewGuid():N}");
            var (code, response) = await TestDocker.ExecAsync(docker, container,
                "for i in $(seq 1 50); do exec 3<>/dev/tcp/127.0.0.1/8081 2>/dev/null && break; sleep 0.2; done; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
            Assert.AreEqual(0L, code, response);
            StringAssert.Contains(response, "Hello from a .NET service");
            var (_, published) = await TestDocker.ExecAsync(docker, container, "test -x /opt/app/DotnetService && systemctl is-enabled dotnet-service.service");
            Assert.AreEqual("enabled", published.Trim());

            // The SBOM names the .NET runtime the self-contained publish copied in, at the version the image runs.
            var (_, runtimeConfig) = await TestDocker.ExecAsync(docker, container, "cat /opt/app/DotnetService.runtimeconfig.json");
            var runtime = System.Text.Json.JsonDocument.Parse(runtimeConfig).RootElement.GetProperty("runtimeOptions").GetProperty("includedFrameworks")
                .EnumerateArray().Single(f => f.GetProperty("name").GetString() == "Microsoft.NETCore.App").GetProperty("version").GetString();
            var rid = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64 ? "arm64" : "x64";
            var sbom = Directory.GetFiles(Path.Combine(Repository.Root, "samples", "dotnet-service", "obj", "msimage"), "sbom.cdx.json", SearchOption.AllDirectories).Single();
            StringAssert.Contains(File.ReadAllText(sbom), $"\"purl\": \"pkg:nuget/Microsoft.NETCore.App.Runtime.linux-{rid}@{runtime}\"");
        }
        finally
        {
            if (container is not null)
            {
                await TestDocker.RemoveContainerAsync(docker, container);
            }
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
