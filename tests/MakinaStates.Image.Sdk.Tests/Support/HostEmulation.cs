using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>The arm64 tests' prerequisite, checked with the SDK's own host check (.ci/setup registers the emulation).</summary>
public static class HostEmulation
{
    public static void RequireArm64()
    {
        try
        {
            PlatformEmulation.ThrowUnlessHostEmulates(ImagePlatform.Parse("linux/arm64", "MsPlatform"));
        }
        catch (ImageBuildException e) when (e.Code == MsiCodes.PlatformNotEmulated)
        {
            TestDocker.MissingPrerequisite($"This host does not emulate linux/arm64 (bash .ci/setup registers it): {e.Message}");
        }
    }
}
