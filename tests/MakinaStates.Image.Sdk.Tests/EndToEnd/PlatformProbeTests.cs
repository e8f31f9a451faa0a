using System.Formats.Tar;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The probe of a remote engine's emulation, against the real engine: images of one file, /usr/bin/uname, a static
/// program made here byte by byte (no arm64 root file system needed). The host's binfmt_misc is never changed: the
/// failing probe runs a program of an architecture nothing emulates here.
/// </summary>
[TestClass]
public sealed class PlatformProbeTests
{
    private static readonly ImagePlatform Arm64 = ImagePlatform.Parse("linux/arm64", "MsPlatform");

    private const ushort AArch64 = 0xb7;
    private const ushort RiscV64 = 0xf3;

    // AArch64: write(1, "aarch64\n", 8); exit(0). The message follows the code (adr x1 is 28 bytes before it).
    private static readonly uint[] PrintsAarch64 =
        [0xd2800020, 0x100000e1, 0xd2800102, 0xd2800808, 0xd4000001, 0xd2800000, 0xd2800ba8, 0xd4000001];

    // AArch64: b . (forever).
    private static readonly uint[] Loops = [0x14000000];

    [TestMethod]
    public async Task An_arm64_image_runs_and_leaves_no_container()
    {
        HostEmulation.RequireArm64();
        await WithImageAsync(AArch64, PrintsAarch64, async (engine, image, labels) =>
        {
            await PlatformEmulation.ThrowUnlessEngineRunsAsync(engine, image, Arm64, labels, CancellationToken.None);
        });
    }

    [TestMethod]
    public async Task A_program_nothing_emulates_is_MSI0110_naming_the_engine()
    {
        // A riscv64 ELF: no qemu-riscv64 is registered here, so the kernel refuses it (exec format error). Were one
        // registered, the arm64 code inside would crash it: a non-zero exit, the same error.
        await WithImageAsync(RiscV64, PrintsAarch64, async (engine, image, labels) =>
        {
            var e = await Assert.ThrowsExactlyAsync<ImageBuildException>(() =>
                PlatformEmulation.ThrowUnlessEngineRunsAsync(engine, image, Arm64, labels, CancellationToken.None));
            Assert.AreEqual(MsiCodes.PlatformNotEmulated, e.Code);
            StringAssert.Contains(e.Message, engine.Endpoint.Display);
            StringAssert.Contains(e.Message, "linux/arm64");
            StringAssert.Contains(e.Message, image);
            StringAssert.Contains(e.Message, "qemu-user-static");
            StringAssert.Contains(e.Message, "F flag");
            if (!File.Exists("/proc/sys/fs/binfmt_misc/qemu-riscv64"))
            {
                StringAssert.Contains(e.Message, "exec format error");
            }
        });
    }

    [TestMethod]
    public async Task A_cancelled_probe_removes_its_labelled_container()
    {
        await WithImageAsync(AArch64, Loops, async (engine, image, labels) =>
        {
            using var cancel = new CancellationTokenSource();
            var probe = PlatformEmulation.ThrowUnlessEngineRunsAsync(engine, image, Arm64, labels, cancel.Token);
            var label = $"{BuildLabels.BuildId}={labels[BuildLabels.BuildId]}";
            for (var i = 0; i < 100 && (await TestDocker.ContainersWithLabelAsync(engine.Client, label)).Count == 0; i++)
            {
                await Task.Delay(100);
            }
            Assert.AreEqual(1, (await TestDocker.ContainersWithLabelAsync(engine.Client, label)).Count, "the probe container does not carry the labels");
            Assert.IsFalse(probe.IsCompleted, "a program that loops forever finished");
            await cancel.CancelAsync();
            await Assert.ThrowsAsync<OperationCanceledException>(() => probe);
        });
    }

    [TestMethod]
    public async Task A_probe_over_its_time_limit_is_MSI0110_and_leaves_no_container()
    {
        await WithImageAsync(AArch64, Loops, async (engine, image, labels) =>
        {
            var e = await Assert.ThrowsExactlyAsync<ImageBuildException>(() =>
                PlatformEmulation.ThrowUnlessEngineRunsAsync(engine, image, Arm64, labels, TimeSpan.FromSeconds(2), CancellationToken.None));
            Assert.AreEqual(MsiCodes.PlatformNotEmulated, e.Code);
            StringAssert.Contains(e.Message, "did not finish within 2 s");
        });
    }

    /// <summary>Imports an image whose only file is /usr/bin/uname, gives the probe labels of a build of its own,
    /// and checks, once the probe is over, that no container of that build is left and removes the image.</summary>
    private static async Task WithImageAsync(ushort machine, uint[] code, Func<DockerEngine, string, IDictionary<string, string>, Task> probe)
    {
        using var client = await TestDocker.RequireEngineAsync();
        using var engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        var buildId = $"probe-{Guid.NewGuid():N}";
        var image = $"makinastates/test-probe-{Guid.NewGuid():N}"[..40] + ":latest";
        await ImportAsync(client, image, Elf(machine, code));
        try
        {
            await probe(engine, image, new Dictionary<string, string> { [BuildLabels.BuildId] = buildId, ["io.makinastates.test"] = "true" });
            var left = await TestDocker.ContainersWithLabelAsync(client, $"{BuildLabels.BuildId}={buildId}");
            Assert.AreEqual(0, left.Count, $"the probe left {string.Join(", ", left.SelectMany(c => c.Names))}");
        }
        finally
        {
            await engine.RemoveBuildContainersAsync(buildId, CancellationToken.None);
            await TestDocker.RemoveImageAsync(client, image);
        }
    }

    private static async Task ImportAsync(DockerClient client, string image, byte[] program)
    {
        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var directory in new[] { "usr/", "usr/bin/" })
            {
                writer.WriteEntry(new PaxTarEntry(TarEntryType.Directory, directory) { Mode = (UnixFileMode)0b111_101_101 });
            }
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "usr/bin/uname")
            {
                Mode = (UnixFileMode)0b111_101_101,
                DataStream = new MemoryStream(program),
            });
        }
        tar.Position = 0;
        string? error = null;
        await client.Images.CreateImageAsync(new ImagesCreateParameters { FromSrc = "-", Repo = image, Platform = "linux/arm64" },
            tar, null, new Progress<JSONMessage>(m => error ??= m.Error?.Message));
        Assert.IsNull(error, error);
        Assert.IsNotNull(await TestDocker.ImageIdAsync(client, image), $"{image} was not imported");
    }

    /// <summary>A static 64-bit little-endian ELF executable: one loadable segment, the code right after the headers.</summary>
    private static byte[] Elf(ushort machine, uint[] code)
    {
        const ulong Base = 0x400000;
        const int Headers = 64 + 56;
        var message = "aarch64\n"u8.ToArray();
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        var size = (ulong)(Headers + code.Length * 4 + message.Length);
        w.Write([0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        w.Write((ushort)2); // ET_EXEC
        w.Write(machine);
        w.Write(1u);
        w.Write(Base + Headers); // entry
        w.Write(64ul); // program headers
        w.Write(0ul); // no section headers
        w.Write(0u);
        w.Write((ushort)64);
        w.Write((ushort)56);
        w.Write((ushort)1);
        w.Write((ushort)0);
        w.Write((ushort)0);
        w.Write((ushort)0);
        w.Write(1u); // PT_LOAD
        w.Write(5u); // R+X
        w.Write(0ul);
        w.Write(Base);
        w.Write(Base);
        w.Write(size);
        w.Write(size);
        w.Write(0x1000ul);
        foreach (var instruction in code)
        {
            w.Write(instruction);
        }
        w.Write(message);
        w.Flush();
        return stream.ToArray();
    }
}
