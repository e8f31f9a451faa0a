using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>
/// The local check of qemu emulation, against binfmt_misc directories written as the kernel shows them (the host's
/// own is never changed: other builds on this machine use it), and once against the host's.
/// </summary>
[TestClass]
public sealed class PlatformEmulationTests
{
    private static readonly ImagePlatform Arm64 = ImagePlatform.Parse("linux/arm64", "MsPlatform");

    // As Debian's qemu-user-static registers them (/usr/lib/binfmt.d/qemu-*.conf).
    private const string Aarch64Magic = "7f454c460201010000000000000000000200b700";
    private const string Aarch64Mask = "ffffffffffffff00fffffffffffffffffeffffff";
    private const string ArmMagic = "7f454c4601010100000000000000000002002800";
    private const string ArmMask = "ffffffffffffff00fffffffffffffffffeffffff";

    private string _directory = "";

    [TestInitialize]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("msimage-binfmt-").FullName;

    [TestCleanup]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private void Status(string value) => File.WriteAllText(Path.Combine(_directory, "status"), value + "\n");

    private void Entry(string name, string flags = "POF", bool enabled = true, string magic = Aarch64Magic, string? mask = Aarch64Mask)
    {
        File.WriteAllText(Path.Combine(_directory, "register"), "");
        File.WriteAllText(Path.Combine(_directory, name),
            $"{(enabled ? "enabled" : "disabled")}\ninterpreter /usr/libexec/qemu-binfmt/{name}-binfmt-P\nflags: {flags}\noffset 0\nmagic {magic}\n"
            + (mask is null ? "" : $"mask {mask}\n"));
    }

    private string Fails()
    {
        var e = Assert.ThrowsExactly<ImageBuildException>(() => PlatformEmulation.ThrowUnlessHostEmulates(Arm64, _directory));
        Assert.AreEqual(MsiCodes.PlatformNotEmulated, e.Code);
        Assert.AreEqual("MSI0110", e.Code);
        StringAssert.Contains(e.Message, "linux/arm64");
        return e.Message;
    }

    [TestMethod]
    public void Registered_with_the_F_flag_passes()
    {
        Status("enabled");
        Entry("qemu-aarch64");
        PlatformEmulation.ThrowUnlessHostEmulates(Arm64, _directory);
    }

    [TestMethod]
    public void An_entry_without_F_says_why_F_is_needed_and_how_to_register_again()
    {
        Status("enabled");
        Entry("qemu-aarch64", flags: "PO");
        var message = Fails();
        StringAssert.Contains(message, "qemu-aarch64");
        StringAssert.Contains(message, "F (fix binary)");
        StringAssert.Contains(message, "(its flags: PO)");
        StringAssert.Contains(message, "inside each container");
        StringAssert.Contains(message, $"echo -1 > {_directory}/qemu-aarch64");
        StringAssert.Contains(message, $"grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > {_directory}/register");
    }

    [TestMethod]
    public void An_entry_without_any_flag_says_none()
    {
        Status("enabled");
        Entry("qemu-aarch64", flags: "");
        StringAssert.Contains(Fails(), "(its flags: none)");
    }

    [TestMethod]
    public void A_disabled_entry_says_how_to_enable_it()
    {
        Status("enabled");
        Entry("qemu-aarch64", enabled: false);
        var message = Fails();
        StringAssert.Contains(message, "qemu-aarch64");
        StringAssert.Contains(message, "is disabled");
        StringAssert.Contains(message, $"echo 1 > {_directory}/qemu-aarch64");
    }

    [TestMethod]
    public void A_disabled_binfmt_misc_says_how_to_enable_it()
    {
        Status("disabled");
        Entry("qemu-aarch64");
        var message = Fails();
        StringAssert.Contains(message, "binfmt_misc is disabled");
        StringAssert.Contains(message, $"echo 1 > {_directory}/status");
    }

    [TestMethod]
    public void No_entry_names_the_package_the_entry_and_the_ways_to_register_it()
    {
        Status("enabled");
        File.WriteAllText(Path.Combine(_directory, "register"), "");
        var message = Fails();
        StringAssert.Contains(message, "qemu-aarch64 is not registered");
        StringAssert.Contains(message, "apt-get install qemu-user-static");
        StringAssert.Contains(message, "with the F flag");
        StringAssert.Contains(message, $"grep -v '^#' /usr/lib/binfmt.d/qemu-aarch64.conf > {_directory}/register");
        StringAssert.Contains(message, "docker run --privileged --rm tonistiigi/binfmt --install arm64");
    }

    [TestMethod]
    public void Not_mounted_says_how_to_mount_it()
    {
        var message = Fails();
        StringAssert.Contains(message, "not mounted");
        StringAssert.Contains(message, $"mount -t binfmt_misc binfmt_misc {_directory}");
        StringAssert.Contains(message, "qemu-aarch64");

        var missing = Path.Combine(_directory, "no-such-directory");
        var e = Assert.ThrowsExactly<ImageBuildException>(() => PlatformEmulation.ThrowUnlessHostEmulates(Arm64, missing));
        StringAssert.Contains(e.Message, $"mount -t binfmt_misc binfmt_misc {missing}");
    }

    [TestMethod]
    public void An_entry_of_another_architecture_does_not_count()
    {
        Status("enabled");
        Entry("qemu-arm", magic: ArmMagic, mask: ArmMask);
        StringAssert.Contains(Fails(), "qemu-aarch64 is not registered");
        // And the arm entry is what linux/arm/v7 needs.
        PlatformEmulation.ThrowUnlessHostEmulates(ImagePlatform.Parse("linux/arm/v7", "MsPlatform"), _directory);
    }

    [TestMethod]
    public void An_entry_of_another_name_whose_mask_matches_counts()
    {
        Status("enabled");
        // As tonistiigi/binfmt names it, with a mask of its own that still ignores the OS ABI and ET_EXEC/ET_DYN bit.
        Entry("aarch64", flags: "F", magic: "7f454c460201010000000000000000000200b700", mask: "ffffffffffffff00fffffffffffffffffeffffff");
        Entry("python3.11", flags: "", magic: "a70d0d0a", mask: null);
        PlatformEmulation.ThrowUnlessHostEmulates(Arm64, _directory);
    }

    [TestMethod]
    public void A_mask_that_keeps_the_executable_type_misses_PIE_executables()
    {
        Status("enabled");
        // Only ET_EXEC (2): Debian's executables are PIE (ET_DYN, 3), which this entry does not take.
        Entry("qemu-aarch64", mask: "ffffffffffffff00ffffffffffffffffffffffff");
        StringAssert.Contains(Fails(), "is not registered");
    }

    [TestMethod]
    public void Any_enabled_matching_entry_without_F_fails_as_the_kernel_may_pick_it()
    {
        Status("enabled");
        Entry("qemu-aarch64");
        Entry("aarch64-legacy", flags: "P");
        StringAssert.Contains(Fails(), "aarch64-legacy");
    }

}
