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
        var build = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "dotnet-service", "dotnet-service.proj"));
        Assert.IsTrue(build.Succeeded, build.Output);
        StringAssert.Contains(build.Output, "dotnet-service answers on port 8081");
        var container = await TestDocker.BootAsync(docker, "makinastates/dotnet-service:candidate", $"dotnet-service-test-{Guid.NewGuid():N}");
        try
        {
            var (code, response) = await TestDocker.ExecAsync(docker, container,
                "for i in $(seq 1 50); do exec 3<>/dev/tcp/127.0.0.1/8081 2>/dev/null && break; sleep 0.2; done; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
            Assert.AreEqual(0L, code, response);
            StringAssert.Contains(response, "Hello from a .NET service");
            var (_, published) = await TestDocker.ExecAsync(docker, container, "test -x /opt/app/DotnetService && systemctl is-enabled dotnet-service.service");
            Assert.AreEqual("enabled", published.Trim());
        }
        finally
        {
            await TestDocker.RemoveContainerAsync(docker, container);
        }
    }
}
