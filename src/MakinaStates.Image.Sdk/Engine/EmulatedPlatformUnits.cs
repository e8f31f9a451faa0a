using System.Formats.Tar;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Units that fail under qemu user-mode emulation only (seen on Debian bookworm arm64 on x86_64: their sandboxing
/// set-up, credentials and namespaces, is not emulated), masked in the build container of an emulated platform so the
/// boot the stages wait for is clean. Not in the image: real hardware of that platform needs them. The masks are
/// listed in /docker/emulation-masks and removed before the commit (<see cref="RemoveCommand"/>).
/// </summary>
public static class EmulatedPlatformUnits
{
    public static readonly IReadOnlyList<string> FailingUnderEmulation =
    [
        "systemd-sysusers.service",
        "systemd-tmpfiles-setup.service",
        "systemd-tmpfiles-setup-dev.service",
    ];

    private const string MaskList = "/docker/emulation-masks";

    /// <summary>Masks the units the image does not already configure in /etc (a created container, before it starts); returns the masks made.</summary>
    public static async Task<IReadOnlyList<string>> MaskAsync(DockerEngine engine, string containerId, CancellationToken cancellationToken)
    {
        var masks = new List<string>();
        foreach (var unit in FailingUnderEmulation)
        {
            var path = $"/etc/systemd/system/{unit}";
            if (!await ContainerFiles.ExistsAsync(engine, containerId, path, cancellationToken).ConfigureAwait(false))
            {
                masks.Add(path);
            }
        }
        if (masks.Count == 0)
        {
            return masks;
        }
        using var archive = new MemoryStream();
        using (var writer = new TarWriter(archive, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var mask in masks)
            {
                writer.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, mask.TrimStart('/')) { LinkName = "/dev/null" });
            }
            var list = System.Text.Encoding.UTF8.GetBytes(string.Join('\n', masks) + "\n");
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, MaskList.TrimStart('/'))
            {
                DataStream = new MemoryStream(list),
                Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
        }
        archive.Position = 0;
        await engine.Client.Containers.ExtractArchiveToContainerAsync(containerId, new CopyToContainerParameters { Path = "/" }, archive, cancellationToken)
            .ConfigureAwait(false);
        return masks;
    }

    /// <summary>Shell words that remove the masks this build made (and only those), run before /docker goes.</summary>
    public static string RemoveCommand => $"if [ -f {MaskList} ]; then while read -r m; do [ \"$(readlink \"$m\")\" = /dev/null ] && rm -f \"$m\"; done < {MaskList}; fi";
}
