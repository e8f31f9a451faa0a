using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// An image platform as the OCI spec and `docker --platform` name it (linux/arm64, linux/arm/v7), with what each part
/// of the build calls the same architecture: Debian (debootstrap --arch), .NET (the app's runtime identifier), the
/// kernel (uname -m, the engine's /info) and ELF (the binfmt_misc magic an emulator registers).
/// </summary>
public sealed record ImagePlatform(string Os, string Architecture, string? Variant)
{
    private sealed record Known(string Architecture, string? Variant, string Debian, string RuntimeIdentifier, string[] KernelNames,
        string ElfMagic, string ElfMask);

    // Magic and mask as qemu-user-static registers them (/usr/lib/binfmt.d/qemu-*.conf): the ELF class, byte order
    // and e_machine of the architecture's executables.
    private static readonly Known[] Table =
    [
        new("amd64", null, "amd64", "linux-x64", ["x86_64", "amd64"],
            "7f454c4602010100000000000000000002003e00", "fffffffffffefe00fffffffffffffffffeffffff"),
        new("arm64", null, "arm64", "linux-arm64", ["aarch64", "arm64", "armv8l"],
            "7f454c460201010000000000000000000200b700", "ffffffffffffff00fffffffffffffffffeffffff"),
        new("arm", "v7", "armhf", "linux-arm", ["armv7l", "armv7", "arm"],
            "7f454c4601010100000000000000000002002800", "ffffffffffffff00fffffffffffffffffeffffff"),
        new("ppc64le", null, "ppc64el", "linux-ppc64le", ["ppc64le"],
            "7f454c4602010100000000000000000002001500", "ffffffffffffff00fffffffffffffffffeffff00"),
        new("s390x", null, "s390x", "linux-s390x", ["s390x"],
            "7f454c4602020100000000000000000000020016", "fffffffffffffffcfffffffffffffffffffeffff"),
        new("riscv64", null, "riscv64", "linux-riscv64", ["riscv64"],
            "7f454c460201010000000000000000000200f300", "ffffffffffffff00fffffffffffffffffeffffff"),
    ];

    private Known Entry => Table.First(k => k.Architecture == Architecture);

    /// <summary>The platform as docker names it: linux/arm64, linux/arm/v7.</summary>
    public string Name => Variant is null ? $"{Os}/{Architecture}" : $"{Os}/{Architecture}/{Variant}";

    /// <summary>What names the platform's base tarball, stage1 image and candidate: arm64, armv7.</summary>
    public string Suffix => Architecture + Variant;

    /// <summary>debootstrap's --arch.</summary>
    public string DebianArchitecture => Entry.Debian;

    /// <summary>The .NET runtime identifier an app is published for to run on this platform.</summary>
    public string RuntimeIdentifier => Entry.RuntimeIdentifier;

    /// <summary>The binfmt_misc magic and mask (hex) of this architecture's ELF executables.</summary>
    public (string Magic, string Mask) Elf => (Entry.ElfMagic, Entry.ElfMask);

    /// <summary>
    /// qemu's name of the architecture: its emulator (qemu-aarch64), binfmt_misc entry and /usr/lib/binfmt.d file. The
    /// kernel's name, except for 32-bit arm (armv7l), whose emulator qemu-arm runs every arm variant.
    /// </summary>
    public string QemuArchitecture => Architecture == "arm" ? "arm" : Entry.KernelNames[0];

    public override string ToString() => Name;

    public static IReadOnlyList<string> Supported => [.. Table.Select(k => k.Variant is null ? $"linux/{k.Architecture}" : $"linux/{k.Architecture}/{k.Variant}")];

    /// <summary>
    /// A platform as a user writes it: os/arch[/variant] (linux/arm64, linux/arm64/v8, linux/arm/v7); the kernel's and
    /// Debian's names of an architecture are accepted too (linux/aarch64, linux/x86_64, linux/armhf).
    /// </summary>
    public static ImagePlatform Parse(string value, string settingName)
    {
        var parts = value.Trim().ToLowerInvariant().Split('/');
        var known = parts.Length is 2 or 3 && parts[0] == "linux" ? Find(parts[1], parts.Length == 3 ? parts[2] : null) : null;
        return known is null
            ? throw new ImageBuildException(MsiCodes.SettingChoiceInvalid, MsiMessages.Format("SettingChoiceInvalid", settingName, value,
                string.Join(", ", Supported), settingName == "MsPlatforms" ? "MS_PLATFORMS" : "MS_PLATFORM"))
            : new ImagePlatform("linux", known.Architecture, known.Variant);
    }

    /// <summary>The engine's own platform from its /info (OSType linux, Architecture x86_64/aarch64…); null when unknown.</summary>
    public static ImagePlatform? FromEngine(string? osType, string? architecture)
    {
        var known = architecture is null ? null : Find(architecture.ToLowerInvariant(), null);
        return known is null || !string.Equals(osType ?? "linux", "linux", StringComparison.OrdinalIgnoreCase)
            ? null : new ImagePlatform("linux", known.Architecture, known.Variant);
    }

    /// <summary>Same architecture: what the engine runs natively (the variant of the engine's own CPU is not reported).</summary>
    public bool RunsNativelyOn(ImagePlatform engine) => Architecture == engine.Architecture;

    private static Known? Find(string architecture, string? variant)
    {
        var byName = Table.FirstOrDefault(k => k.Architecture == architecture || k.Debian == architecture || k.KernelNames.Contains(architecture));
        // arm64's only variant is v8; arm is v7 here (armhf): other variants are not what Debian builds.
        return byName is null ? null
            : variant is null || variant == byName.Variant || (byName.Architecture == "arm64" && variant == "v8") ? byName : null;
    }
}
