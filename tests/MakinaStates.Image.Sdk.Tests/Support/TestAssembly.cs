using Microsoft.Build.Locator;

[assembly: DoNotParallelize]
// Image builds need a Linux host (systemd images, POSIX ACLs).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace MakinaStates.Image.Sdk.Tests.Support;

[TestClass]
public static class TestAssembly
{
    /// <summary>MSBuild must be located before any Microsoft.Build type is loaded.</summary>
    [AssemblyInitialize]
    public static async Task Initialize(TestContext _)
    {
        if (!MSBuildLocator.IsRegistered)
        {
            MSBuildLocator.RegisterDefaults();
        }
        await RunScope.StartAsync();
    }

    /// <summary>Engines shared by several test classes stop with the run; then what the run owns goes.</summary>
    [AssemblyCleanup]
    public static async Task StopSharedEngines()
    {
        await SharedCgroupV2Engine.StopAsync();
        await SharedPodmanService.StopAsync();
        await RunScope.EndAsync();
    }
}
