using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The OS base tarball's formats, by its name, as stage0.sh writes them: .tar.xz, .tar.gz/.tgz, .tar. The
/// SDK writes it from the uncompressed tar that stage0.sh left, beside the import, so the build never waits for the
/// compression before it can go on; and when the engine refuses a tarball, the SDK reads it to tell whether the
/// tarball is at fault.
/// </summary>
public static class BaseTarball
{
    /// <summary>Whether this host can write a tarball of that name from the raw tar (.tar.xz needs the xz program).</summary>
    public static bool CanWrite(string tarballPath) => Format(tarballPath) switch
    {
        "xz" => FindProgram("xz") is not null,
        "gz" or "tar" => true,
        _ => false,
    };

    /// <summary>
    /// Writes <paramref name="tarballPath"/> from the raw tar under a temporary name and renames it when complete;
    /// <paramref name="beforeRename"/> is given the tarball's SHA-256 just before (what names it must exist first).
    /// </summary>
    /// <returns>The tarball's whole SHA-256 (hex; <see cref="Tag"/> gives the tag of its import).</returns>
    public static Task<string> WriteFromRawAsync(string rawPath, string tarballPath, Action<string>? beforeRename, CancellationToken cancellationToken) =>
        Concurrency.AtomicFile.WriteAsync(tarballPath, async partial =>
        {
            await using (var output = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
            {
                switch (Format(tarballPath))
                {
                    case "xz":
                        await XzAsync(rawPath, output, cancellationToken).ConfigureAwait(false);
                        break;
                    case "gz":
                        await using (var input = File.OpenRead(rawPath))
                        await using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
                        {
                            await input.CopyToAsync(gzip, 1 << 20, cancellationToken).ConfigureAwait(false);
                        }
                        break;
                    default:
                        await using (var input = File.OpenRead(rawPath))
                        {
                            await input.CopyToAsync(output, 1 << 20, cancellationToken).ConfigureAwait(false);
                        }
                        break;
                }
            }
            // The tarball carries the time the base was made (the raw tar's): the default epoch of reproducible images.
            File.SetLastWriteTimeUtc(partial, File.GetLastWriteTimeUtc(rawPath));
            var sha256 = await Sha256Async(partial, cancellationToken).ConfigureAwait(false);
            beforeRename?.Invoke(sha256);
            return sha256;
        });

    /// <summary>The first 16 hex digits of a file's SHA-256: the tag of its import.</summary>
    public static async Task<string> HashAsync(string path, CancellationToken cancellationToken) => Tag(await Sha256Async(path, cancellationToken).ConfigureAwait(false));

    /// <summary>A file's whole SHA-256, hex (the inputs key's base value).</summary>
    public static async Task<string> Sha256Async(string path, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan | FileOptions.Asynchronous);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The tag of a tarball's import, from its whole SHA-256 (hex).</summary>
    public static string Tag(string sha256) => sha256[..16];

    /// <summary>
    /// Lists the tarball through with tar(1) (System.Formats.Tar cannot read the binary xattr records of a rootfs
    /// tarball): false when it is truncated or corrupt, null when this host cannot tell (a name it does not know, no
    /// tar, or no xz for a .tar.xz).
    /// </summary>
    public static async Task<bool?> IsReadableAsync(string tarballPath, CancellationToken cancellationToken)
    {
        var format = Format(tarballPath);
        if (format.Length == 0 || FindProgram("tar") is not { } tar || (format == "xz" && FindProgram("xz") is null))
        {
            return null;
        }
        using var list = Process.Start(new ProcessStartInfo(tar, ["-tf", tarballPath]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var errors = list.StandardError.ReadToEndAsync(cancellationToken);
        await list.StandardOutput.BaseStream.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
        await list.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        await errors.ConfigureAwait(false);
        return list.ExitCode == 0;
    }

    /// <summary>
    /// xz in the background, at a lower priority so the import and the stages that run meanwhile go first. Level 0, not
    /// stage0.sh's 3: a fifth larger, a quarter of the CPU time, so it mostly ends within the stages it overlaps (the
    /// tarball is a local cache, read once per new tarball).
    /// </summary>
    private static async Task XzAsync(string rawPath, Stream output, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(FindProgram("xz") ?? "xz", ["-T0", "-0", "-c", rawPath])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var xz = Process.Start(start) ?? throw new IOException("xz could not be started");
        try
        {
            xz.PriorityClass = ProcessPriorityClass.BelowNormal;
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already done, or not allowed: it still works at the normal priority.
        }
        try
        {
            var errors = xz.StandardError.ReadToEndAsync(cancellationToken);
            await xz.StandardOutput.BaseStream.CopyToAsync(output, 1 << 20, cancellationToken).ConfigureAwait(false);
            await xz.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (xz.ExitCode != 0)
            {
                throw new IOException($"xz exited with code {xz.ExitCode}: {(await errors.ConfigureAwait(false)).Trim()}");
            }
        }
        catch (OperationCanceledException)
        {
            xz.Kill();
            throw;
        }
    }

    private static string Format(string tarballPath) => tarballPath switch
    {
        _ when tarballPath.EndsWith(".tar.xz", StringComparison.Ordinal) => "xz",
        _ when tarballPath.EndsWith(".tar.gz", StringComparison.Ordinal) || tarballPath.EndsWith(".tgz", StringComparison.Ordinal) => "gz",
        _ when tarballPath.EndsWith(".tar", StringComparison.Ordinal) => "tar",
        _ => "",
    };

    private static string? FindProgram(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}
