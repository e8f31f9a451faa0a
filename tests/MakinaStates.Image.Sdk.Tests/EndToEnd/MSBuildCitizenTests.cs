using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>The image project behaves like every other project: image config from MSBuild, clean, IDE builds.</summary>
[TestClass]
public sealed class MSBuildCitizenTests
{
    [TestMethod]
    public async Task Image_configuration_comes_from_properties_and_items()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-config-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image, """
            <PropertyGroup>
              <Version>1.2.3</Version>
              <SourceRevisionId>abc123</SourceRevisionId>
              <RepositoryUrl>https://git.example.invalid/team/app</RepositoryUrl>
              <Description>An image with a config</Description>
              <Authors>The team</Authors>
              <MsGenerateLabelAuthors>false</MsGenerateLabelAuthors>
            </PropertyGroup>
            <ItemGroup>
              <MsLabel Include="com.example.tier" Value="backend" />
              <MsEnvironmentVariable Include="APP_MODE" Value="production" />
              <MsPort Include="8080" Type="tcp" />
              <MsPort Include="5353" Type="udp" />
              <MsVolume Include="/var/lib/app" />
            </ItemGroup>
            """);
        try
        {
            var build = await project.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            var config = (await docker.Images.InspectImageAsync($"{image}:candidate")).Config!;
            Assert.AreEqual("1.2.3", config.Labels!["org.opencontainers.image.version"]);
            Assert.AreEqual("abc123", config.Labels["org.opencontainers.image.revision"]);
            Assert.AreEqual("https://git.example.invalid/team/app", config.Labels["org.opencontainers.image.source"]);
            Assert.AreEqual("An image with a config", config.Labels["org.opencontainers.image.description"]);
            Assert.IsFalse(config.Labels.ContainsKey("org.opencontainers.image.authors"), "switched off with MsGenerateLabelAuthors=false");
            Assert.IsTrue(DateTimeOffset.TryParse(config.Labels["org.opencontainers.image.created"], out _));
            Assert.AreEqual("backend", config.Labels["com.example.tier"]);
            CollectionAssert.Contains(config.Env!.ToList(), "APP_MODE=production");
            CollectionAssert.IsSubsetOf(new[] { "8080/tcp", "5353/udp" }, config.ExposedPorts!.Keys.ToList());
            CollectionAssert.Contains(config.Volumes!.Keys.ToList(), "/var/lib/app");
            Assert.AreEqual("SIGRTMIN+3", config.StopSignal);
            CollectionAssert.AreEqual(new[] { "/sbin/init" }, config.Cmd!.ToArray());

            // The created stamp is not an input: the next build is up to date.
            StringAssert.Contains((await project.BuildAsync()).Output, "is up to date");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Bad_port_is_MSI0017()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject("makinastates/test-bad-port", """<ItemGroup><MsPort Include="99999" /></ItemGroup>""");
        var build = await project.BuildAsync();
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0017");
        StringAssert.Contains(build.Output, "99999");
    }

    [TestMethod]
    public async Task Clean_removes_the_intermediate_state_and_with_MsCleanImages_the_images()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-clean-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        try
        {
            Assert.IsTrue((await project.BuildAsync()).Succeeded);
            var state = Path.Combine(project.Directory, "obj", "msimage");
            Assert.IsTrue(Directory.Exists(state), "no intermediate state was written");

            HostProcess.RunIn(project.Directory, "dotnet", "clean", project.ProjectFile, "-nr:false", "-v:q");
            Assert.IsFalse(Directory.Exists(state), "dotnet clean left obj/msimage");
            Assert.IsNotNull(await TestDocker.ImageIdAsync(docker, $"{image}:candidate"), "a plain clean keeps the images");

            HostProcess.RunIn(project.Directory, "dotnet", "clean", project.ProjectFile, "-nr:false", "-v:q", "-p:MsCleanImages=true");
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));
            Assert.IsNull(await TestDocker.ImageIdAsync(docker, $"{image}-stage1:latest"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    /// <summary>An engine that cannot answer: any engine call would fail the build, so success proves none was made.</summary>
    [TestMethod]
    [DataRow("-p:DesignTimeBuild=true")]
    [DataRow("-p:BuildingProject=false")]
    public async Task Design_time_builds_never_talk_to_the_engine(string designTime)
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject("makinastates/test-design-time");
        var build = await project.BuildAsync(designTime, "-p:MsDockerHost=tcp://127.0.0.1:1");
        Assert.IsTrue(build.Succeeded, build.Output);
        Assert.IsFalse(build.Output.Contains("MSI0101", StringComparison.Ordinal));
        Assert.IsNull(build.BuildId, "Stage0 ran in a design-time build");
    }
}
