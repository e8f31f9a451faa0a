using System.Text.Json;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Image projects in a solution with app projects, as CI builds it: the solution's restore sees the image projects as
/// projects without packages (no NU1503, which -warnaserror would make an error) and restores each referenced app for
/// every platform's runtime, so a build without restore publishes it for each.
/// </summary>
[TestClass]
public sealed class SolutionTests
{
    private const string App = """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <InvariantGlobalization>true</InvariantGlobalization>
          </PropertyGroup>
        </Project>
        """;

    /// <summary>A solution x.slnx: image one/ (the engine's platform), image two/ (amd64 and arm64, publishing app/), app/.</summary>
    private static ImageProject Solution(string one, string two)
    {
        var root = new ImageProject(one, """<ItemGroup><InjectedVolume Include="site/" TargetPath="/srv/one/" /></ItemGroup>""");
        root.Write("site/which", "one\n");
        root.Write("two/two.proj", $"""
            <Project Sdk="MakinaStates.Image.Sdk/{Repository.SdkVersion}">
              <PropertyGroup>
                <MsImage>{two}</MsImage>
                <MsPlatforms>linux/amd64;linux/arm64</MsPlatforms>
              </PropertyGroup>
              <ItemGroup>
                <ProjectReference Include="../app/App.csproj" TargetPath="/opt/app/" />
              </ItemGroup>
            </Project>
            """);
        root.Write("app/App.csproj", App);
        root.Write("app/Program.cs", "System.Console.WriteLine(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture);");
        HostProcess.RunIn(root.Directory, "dotnet", "new", "sln", "-n", "x", "--format", "slnx");
        HostProcess.RunIn(root.Directory, "dotnet", "sln", "x.slnx", "add", "image.proj", "two/two.proj", "app/App.csproj");
        return root;
    }

    private static string[] AssetsTargets(ImageProject root)
    {
        using var assets = JsonDocument.Parse(File.ReadAllText(Path.Combine(root.Directory, "app", "obj", "project.assets.json")));
        return [.. assets.RootElement.GetProperty("targets").EnumerateObject().Select(t => t.Name)];
    }

    [TestMethod]
    public async Task Solution_restore_has_no_warning_and_restores_the_app_for_every_platform()
    {
        Repository.RequirePackedSdk();
        using var root = Solution("makinastates/test-sln-restore-one", "makinastates/test-sln-restore-two");
        var restore = await DotnetCommand.RunAsync(root.Directory, ["restore", "x.slnx", "-nr:false", "-warnaserror"]);
        Assert.IsTrue(restore.Succeeded, restore.Output);
        Assert.IsFalse(restore.Output.Contains("NU1503", StringComparison.Ordinal), restore.Output);
        CollectionAssert.IsSubsetOf(new[] { "net10.0", "net10.0/linux-x64", "net10.0/linux-arm64" }, AssetsTargets(root),
            "the app's own build and each platform's publish find their assets");
    }

    [TestMethod]
    public async Task Solution_builds_with_warnings_as_errors_with_its_restore_and_after_a_separate_one()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        HostEmulation.RequireArm64();
        var one = $"makinastates/test-sln-one-{Guid.NewGuid():N}"[..40];
        var two = $"makinastates/test-sln-two-{Guid.NewGuid():N}"[..40];
        using var root = Solution(one, two);
        var solution = Path.Combine(root.Directory, "x.slnx");
        try
        {
            var build = await DotnetBuild.RunAsync(solution, ["-m", "-warnaserror"]);
            Assert.IsTrue(build.Succeeded, build.Output);
            Assert.IsFalse(build.Output.Contains("NU1503", StringComparison.Ordinal), build.Output);
            StringAssert.Contains(build.Output, $"Check image tag: {one}:candidate");
            StringAssert.Contains(build.Output, $"{two}:candidate-arm64 (linux/arm64)");
            Assert.AreEqual("one\n", await TestDocker.ReadFileFromImageAsync(docker, $"{one}:candidate", "/srv/one/which"));

            // Only the solution's restore this time: the app's assets (and the images' state) start from nothing.
            foreach (var obj in new[] { "obj", "two/obj", "app/obj", "app/bin" })
            {
                if (Directory.Exists(Path.Combine(root.Directory, obj))) Directory.Delete(Path.Combine(root.Directory, obj), recursive: true);
            }
            var restore = await DotnetCommand.RunAsync(root.Directory, ["restore", "x.slnx", "-nr:false", "-warnaserror"]);
            Assert.IsTrue(restore.Succeeded, restore.Output);
            var noRestore = await DotnetBuild.RunAsync(solution, ["--no-restore", "-warnaserror"]);
            Assert.IsTrue(noRestore.Succeeded, noRestore.Output);
            StringAssert.Contains(noRestore.Output, $"{two}:candidate-arm64 (linux/arm64)");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, one);
            foreach (var reference in new[] { $"{two}:candidate", $"{two}:candidate-arm64", $"{two}-stage1:latest", $"{two}-stage1:arm64" })
            {
                await TestDocker.RemoveImageAsync(docker, reference);
            }
        }
    }
}
