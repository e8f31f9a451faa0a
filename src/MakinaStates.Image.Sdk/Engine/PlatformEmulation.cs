using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Whether an engine can run programs of a platform that is not its own, under qemu user-mode emulation: the kernel
/// hands such an executable to the emulator its binfmt_misc entry names. Inside a container that works only with the
/// entry's F flag (the emulator is opened when it is registered, not looked up in the container's root).
/// </summary>
public static class PlatformEmulation
{
    public const string BinfmtDirectory = "/proc/sys/fs/binfmt_misc";

    /// <summary>uname -m under qemu takes well under a second; a minute covers a loaded host and a cold image.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// For an engine on this machine (same kernel): throws MSI0110, saying what to do, unless an enabled binfmt_misc
    /// entry with the F flag handles the platform's executables. Reads a few small files only: it runs before anything
    /// else of the build.
    /// </summary>
    public static void ThrowUnlessHostEmulates(ImagePlatform platform, string binfmtDirectory = BinfmtDirectory)
    {
        var status = ReadLines(Path.Combine(binfmtDirectory, "status"));
        if (status is null)
        {
            throw Error("PlatformEmulationNotMounted", platform, binfmtDirectory, platform.QemuArchitecture);
        }
        if (status.FirstOrDefault()?.Trim() != "enabled")
        {
            throw Error("PlatformEmulationStatusDisabled", platform, binfmtDirectory);
        }
        var handlers = Directory.EnumerateFiles(binfmtDirectory)
            .Where(path => Path.GetFileName(path) is not ("status" or "register"))
            .Order(StringComparer.Ordinal)
            .Select(BinfmtEntry.Read)
            .Where(entry => entry?.Handles(platform) == true)
            .Select(entry => entry!)
            .ToList();
        if (handlers.Count == 0)
        {
            throw Error("PlatformEmulationNotRegistered", platform, binfmtDirectory, platform.QemuArchitecture, platform.Architecture);
        }
        var enabled = handlers.Where(e => e.Enabled).ToList();
        if (enabled.Count == 0)
        {
            throw Error("PlatformEmulationDisabled", platform, binfmtDirectory, handlers[0].Name);
        }
        // Which of several matching entries the kernel picks is not shown here: every enabled one must work.
        if (enabled.FirstOrDefault(e => !e.Flags.Contains('F', StringComparison.Ordinal)) is { } withoutF)
        {
            throw Error("PlatformEmulationWithoutFixBinary", platform, binfmtDirectory, withoutF.Name,
                withoutF.Flags.Length > 0 ? withoutF.Flags : "none", platform.QemuArchitecture, platform.Architecture);
        }
    }

    /// <summary>
    /// For an engine whose host this process cannot look at: runs uname -m in <paramref name="image"/> (an imported
    /// base of the platform) and throws MSI0110 unless it runs. The probe container carries <paramref name="labels"/>
    /// (the build's cleanup finds it) and is removed whatever happens.
    /// </summary>
    public static Task ThrowUnlessEngineRunsAsync(DockerEngine engine, string image, ImagePlatform platform,
        IDictionary<string, string> labels, CancellationToken cancellationToken) =>
        ThrowUnlessEngineRunsAsync(engine, image, platform, labels, ProbeTimeout, cancellationToken);

    /// <summary>The probe with another time limit (tests).</summary>
    internal static async Task ThrowUnlessEngineRunsAsync(DockerEngine engine, string image, ImagePlatform platform,
        IDictionary<string, string> labels, TimeSpan timeLimit, CancellationToken cancellationToken)
    {
        // Named before it exists, so that whatever happens it is known what to remove.
        var name = $"msimage-probe-{Guid.NewGuid():N}";
        string? failure;
        try
        {
            failure = await ProbeAsync(engine, new CreateContainerParameters
            {
                Name = name,
                Image = image,
                Entrypoint = ["uname"],
                Cmd = ["-m"],
                // An imported base has no environment of its own.
                Env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                Labels = labels,
                NetworkDisabled = true,
            }, timeLimit, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await engine.RemoveContainerAsync(name, CancellationToken.None).ConfigureAwait(false);
        }
        if (failure is not null)
        {
            throw Error("PlatformEngineCannotRun", platform, engine.Endpoint.Display, image, failure, platform.QemuArchitecture, platform.Architecture);
        }
    }

    /// <summary>What went wrong, as the message goes on ("exited with code 1: …"), or null when the probe ran.</summary>
    private static async Task<string?> ProbeAsync(DockerEngine engine, CreateContainerParameters container, TimeSpan timeLimit,
        CancellationToken cancellationToken)
    {
        using var limit = new CancellationTokenSource(timeLimit);
        using var limitOrCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, limit.Token);
        var output = new List<string>();
        try
        {
            // The create is left to finish when the build is cancelled: Docker goes on creating a container whose
            // request was dropped (and lists it, by name too, before it can be removed), which would be left behind.
            var created = await engine.Client.Containers.CreateContainerAsync(container, limit.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            // WaitAsync: a remote engine's transport does not honour the token everywhere.
            var (exitCode, _) = await ContainerRun.RunToExitAsync(engine, created.ID, output.Add, limitOrCancel.Token)
                .WaitAsync(timeLimit, cancellationToken).ConfigureAwait(false);
            var text = string.Join(" ", output.Select(l => l.Trim()).Where(l => l.Length > 0));
            return exitCode == 0 && !IsExecFormatError(text) ? null
                : $"exited with code {exitCode}{(text.Length > 0 ? ": " + text : "")}";
        }
        catch (DockerApiException e) when (IsExecFormatError(e.ResponseBody ?? e.Message))
        {
            // Depending on the runtime, a first program the kernel refuses is a start error or the container's output.
            return $"failed to start: {(e.ResponseBody ?? e.Message).Trim()}";
        }
        catch (Exception e) when (e is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            return $"did not finish within {timeLimit.TotalSeconds:0} s";
        }
    }

    private static bool IsExecFormatError(string text) => text.Contains("exec format error", StringComparison.OrdinalIgnoreCase);

    private static ImageBuildException Error(string name, ImagePlatform platform, params object[] more) =>
        new(MsiCodes.PlatformNotEmulated, MsiMessages.Format(name, [platform.Name, .. more]));

    private static string[]? ReadLines(string path)
    {
        try
        {
            return File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>An entry as the kernel shows it: enabled, interpreter, flags, offset, magic, mask (the last two hex).</summary>
    private sealed record BinfmtEntry(string Name, bool Enabled, string Flags, int Offset, byte[]? Magic, byte[]? Mask)
    {
        public static BinfmtEntry? Read(string path)
        {
            if (ReadLines(path) is not { Length: > 0 } lines)
            {
                return null;
            }
            string? Field(string key) =>
                lines.FirstOrDefault(l => l.StartsWith(key + " ", StringComparison.Ordinal) || l.StartsWith(key + ":", StringComparison.Ordinal)) is { } line
                    ? line[(key.Length + 1)..].Trim() : null;
            try
            {
                return new BinfmtEntry(Path.GetFileName(path), lines[0].Trim() == "enabled", Field("flags") ?? "",
                    int.TryParse(Field("offset"), out var offset) ? offset : 0,
                    Field("magic") is { } magic ? Convert.FromHexString(magic) : null,
                    Field("mask") is { } mask ? Convert.FromHexString(mask) : null);
            }
            catch (FormatException)
            {
                return null;
            }
        }

        /// <summary>
        /// Whether the kernel would give this entry the platform's executables, position-dependent (ET_EXEC) and PIE
        /// (ET_DYN, what Debian builds) alike: each header under the entry's mask equals its magic.
        /// </summary>
        public bool Handles(ImagePlatform platform)
        {
            if (Magic is null || Offset != 0)
            {
                return false;
            }
            var executable = Convert.FromHexString(platform.Elf.Magic);
            if (Magic.Length > executable.Length || (Mask is not null && Mask.Length != Magic.Length))
            {
                return false;
            }
            var pie = (byte[])executable.Clone();
            // e_type (bytes 16-17) in the header's byte order (byte 5: 1 little-endian, 2 big-endian): 2 → 3.
            pie[pie[5] == 1 ? 16 : 17] |= 1;
            return Matches(executable) && Matches(pie);
        }

        private bool Matches(byte[] header)
        {
            for (var i = 0; i < Magic!.Length; i++)
            {
                if ((header[i] & (Mask?[i] ?? 0xff)) != Magic[i])
                {
                    return false;
                }
            }
            return true;
        }
    }
}
