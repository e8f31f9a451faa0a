using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>One platform, as docker, Debian, .NET and the kernel name it.</summary>
[TestClass]
public sealed class ImagePlatformTests
{
    [TestMethod]
    [DataRow("linux/arm64", "linux/arm64", "arm64", "arm64", "linux-arm64")]
    [DataRow("linux/arm64/v8", "linux/arm64", "arm64", "arm64", "linux-arm64")]
    [DataRow("Linux/AArch64", "linux/arm64", "arm64", "arm64", "linux-arm64")]
    [DataRow("linux/amd64", "linux/amd64", "amd64", "amd64", "linux-x64")]
    [DataRow("linux/x86_64", "linux/amd64", "amd64", "amd64", "linux-x64")]
    [DataRow("linux/arm/v7", "linux/arm/v7", "armv7", "armhf", "linux-arm")]
    [DataRow("linux/armhf", "linux/arm/v7", "armv7", "armhf", "linux-arm")]
    [DataRow(" linux/ppc64le ", "linux/ppc64le", "ppc64le", "ppc64el", "linux-ppc64le")]
    [DataRow("linux/s390x", "linux/s390x", "s390x", "s390x", "linux-s390x")]
    [DataRow("linux/riscv64", "linux/riscv64", "riscv64", "riscv64", "linux-riscv64")]
    public void A_platform_has_each_tools_name(string value, string name, string suffix, string debian, string runtime)
    {
        var platform = ImagePlatform.Parse(value, "MsPlatform");
        Assert.AreEqual(name, platform.Name);
        Assert.AreEqual(suffix, platform.Suffix);
        Assert.AreEqual(debian, platform.DebianArchitecture);
        Assert.AreEqual(runtime, platform.RuntimeIdentifier);
    }

    [TestMethod]
    [DataRow("arm64")]
    [DataRow("windows/amd64")]
    [DataRow("linux/mips")]
    [DataRow("linux/arm/v6")]
    [DataRow("linux/arm64/v9")]
    [DataRow("linux/arm64/v8/x")]
    public void An_unknown_platform_is_a_coded_error_listing_the_supported_ones(string value)
    {
        var error = Assert.ThrowsExactly<ImageBuildException>(() => ImagePlatform.Parse(value, "MsPlatforms"));
        Assert.AreEqual(MsiCodes.SettingChoiceInvalid, error.Code);
        StringAssert.Contains(error.Message, "MsPlatforms");
        StringAssert.Contains(error.Message, "linux/arm64");
        StringAssert.Contains(error.Message, "MS_PLATFORMS");
    }

    [TestMethod]
    public void The_engine_names_its_architecture_as_the_kernel_does()
    {
        Assert.AreEqual("linux/amd64", ImagePlatform.FromEngine("linux", "x86_64")!.Name);
        Assert.AreEqual("linux/arm64", ImagePlatform.FromEngine("linux", "aarch64")!.Name);
        Assert.IsNull(ImagePlatform.FromEngine("windows", "x86_64"));
        Assert.IsNull(ImagePlatform.FromEngine("linux", "mips"));
        var arm64 = ImagePlatform.Parse("linux/arm64", "MsPlatform");
        Assert.IsFalse(arm64.RunsNativelyOn(ImagePlatform.FromEngine("linux", "x86_64")!));
        Assert.IsTrue(arm64.RunsNativelyOn(ImagePlatform.FromEngine("linux", "aarch64")!));
    }

    [TestMethod]
    public void Several_platforms_and_the_default_base_tarball_names_come_from_the_description()
    {
        var description = new BuildDescription { MsOs = "debian", MsOsRelease = "bookworm", MsBaseImage = "baseimage-debian-bookworm.tar.xz",
            MsPlatforms = "linux/amd64; linux/arm64,", MsPlatform = "linux/s390x" };
        CollectionAssert.AreEqual(new[] { "linux/amd64", "linux/arm64" }, description.RequestedPlatforms().Select(p => p.Name).ToArray(), "MsPlatforms wins over MsPlatform");
        Assert.IsTrue(description.HasDefaultBaseImage);
        Assert.AreEqual("baseimage-debian-bookworm-arm64.tar.xz", description.DefaultBaseImageName("arm64"));
        description.MsPlatforms = "";
        CollectionAssert.AreEqual(new[] { "linux/s390x" }, description.RequestedPlatforms().Select(p => p.Name).ToArray());
        description.MsPlatform = "";
        Assert.AreEqual(0, description.RequestedPlatforms().Count, "none: the engine's own");
        description.MsBaseImage = "/srv/base.tar.xz";
        Assert.IsFalse(description.HasDefaultBaseImage);
    }
}
