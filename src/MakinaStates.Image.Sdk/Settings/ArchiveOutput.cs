using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// MsArchiveOutputPath and MsArchiveFormat, resolved: the file the candidate is written to after the build, and its
/// format. Checked by Stage0 before anything is made (a bad format, a docker archive of several platforms, a folder
/// part that is a file, a read-only place), so a build never runs for minutes to fail at its last step.
/// </summary>
public sealed record ArchiveOutput(string Path, string Format)
{
    public const string Oci = "oci";
    public const string Docker = "docker";

    /// <summary>Null when MsArchiveOutputPath is empty (no archive).</summary>
    /// <param name="path">MsArchiveOutputPath as a full path (Sdk.Settings.targets makes it one); a trailing separator,
    /// or an existing folder, is a folder that gets <c>&lt;image name&gt;.tar</c>.</param>
    /// <param name="severalPlatforms">The build makes several platforms (the docker format holds one).</param>
    public static ArchiveOutput? Resolve(string path, string format, ImageReference image, bool severalPlatforms)
    {
        var chosen = format.Trim().ToLowerInvariant() switch
        {
            "" or Oci => Oci,
            Docker => Docker,
            _ => throw new ImageBuildException(MsiCodes.SettingChoiceInvalid,
                MsiMessages.Format("SettingChoiceInvalid", "MsArchiveFormat", format, "oci, docker", "MS_ARCHIVE_FORMAT")),
        };
        if (string.IsNullOrWhiteSpace(path))
        {
            return null;
        }
        if (chosen == Docker && severalPlatforms)
        {
            throw new ImageBuildException(MsiCodes.ArchiveFormatOnePlatform, MsiMessages.Format("ArchiveFormatOnePlatform"));
        }
        path = path.Trim();
        var file = path.EndsWith('/') || path.EndsWith(System.IO.Path.DirectorySeparatorChar) || Directory.Exists(path)
            ? System.IO.Path.Combine(path, image.Repository.Split('/')[^1] + ".tar")
            : path;
        file = System.IO.Path.GetFullPath(file);
        ThrowUnlessWritable(file);
        return new ArchiveOutput(file, chosen);
    }

    /// <summary>The archive's folder must be a folder (or be creatable as one) on a file system this build can write.</summary>
    private static void ThrowUnlessWritable(string file)
    {
        if (Directory.Exists(file))
        {
            throw new ImageBuildException(MsiCodes.ArchivePathInvalid, MsiMessages.Format("ArchivePathIsFolder", file));
        }
        // The nearest part of the path that exists: a file there means the folder can never be made.
        var existing = System.IO.Path.GetDirectoryName(file);
        while (existing is not null && !Directory.Exists(existing))
        {
            if (File.Exists(existing))
            {
                throw new ImageBuildException(MsiCodes.ArchivePathInvalid, MsiMessages.Format("ArchiveFolderIsFile", file, existing));
            }
            existing = System.IO.Path.GetDirectoryName(existing);
        }
        // access(2) answers for root too on a read-only file system (EROFS), and for anyone on a folder they cannot write.
        if (existing is not null && OperatingSystem.IsLinux() && Mono.Unix.Native.Syscall.access(existing, Mono.Unix.Native.AccessModes.W_OK) != 0)
        {
            var error = Mono.Unix.Native.Stdlib.GetLastError();
            throw new ImageBuildException(MsiCodes.ArchivePathInvalid, MsiMessages.Format("ArchiveFolderNotWritable", file, existing,
                Mono.Unix.UnixMarshal.GetErrorDescription(error)));
        }
    }
}
