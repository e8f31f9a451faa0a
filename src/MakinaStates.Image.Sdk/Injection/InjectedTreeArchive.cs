using System.IO.Pipelines;
using System.Text;
using MakinaStates.Image.Sdk.Diagnostics;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// Streams an <see cref="InjectedTree"/> as a pax tar: modes (setuid/setgid/sticky), numeric owners, mtimes,
/// xattrs and POSIX ACLs (as SCHILY.xattr records), symlinks as links, hardlinks as links. File content is
/// copied through a small buffer, so memory does not grow with the tree.
/// </summary>
public static class InjectedTreeArchive
{
    /// <summary>Xattr namespaces that travel: POSIX ACLs, user attributes and file capabilities.</summary>
    private static readonly string[] CarriedXattrPrefixes = ["system.posix_acl_access", "system.posix_acl_default", "user.", "security.capability"];

    /// <param name="omittedDirectories">Folders (image paths) whose own entry is not written; their content is.</param>
    public static async Task WriteAsync(InjectedTree tree, Stream output, CancellationToken cancellationToken, IReadOnlySet<string>? omittedDirectories = null)
    {
        var writer = new PaxTarWriter(output);
        var firstPathOfInode = new Dictionary<(ulong Device, ulong Inode), string>();
        foreach (var node in tree.Nodes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var stat = node.Stat;
            var type = stat.st_mode & FilePermissions.S_IFMT;
            var entry = new PaxTarWriter.Entry(node.ImagePath, PaxTarWriter.EntryType.File, (int)((uint)stat.st_mode & 0xFFF),
                stat.st_uid, stat.st_gid, DateTimeOffset.FromUnixTimeSeconds(stat.st_mtime).AddTicks(stat.st_mtime_nsec / 100))
            {
                Xattrs = ReadXattrs(node.HostPath),
            };

            switch (type)
            {
                case FilePermissions.S_IFDIR when omittedDirectories?.Contains(node.ImagePath) == true:
                    break;
                case FilePermissions.S_IFDIR:
                    await writer.WriteEntryAsync(entry with { Name = node.ImagePath + "/", Type = PaxTarWriter.EntryType.Directory }, null, cancellationToken).ConfigureAwait(false);
                    break;
                case FilePermissions.S_IFLNK:
                    await writer.WriteEntryAsync(entry with { Type = PaxTarWriter.EntryType.Symlink, LinkName = ReadLink(node.HostPath) }, null, cancellationToken).ConfigureAwait(false);
                    break;
                // A host file met again (a hardlink, or the same file laid at two places of the tree, as under
                // /docker/injected_volumes) travels once; the other places link to it.
                case FilePermissions.S_IFREG when firstPathOfInode.TryGetValue((stat.st_dev, stat.st_ino), out var first):
                    await writer.WriteEntryAsync(entry with { Type = PaxTarWriter.EntryType.HardLink, LinkName = first, Xattrs = new Dictionary<string, byte[]>() }, null, cancellationToken).ConfigureAwait(false);
                    break;
                case FilePermissions.S_IFREG:
                    firstPathOfInode[(stat.st_dev, stat.st_ino)] = node.ImagePath;
                    await using (var content = OpenForReading(node.HostPath))
                    {
                        await writer.WriteEntryAsync(entry with { Size = stat.st_size }, content, cancellationToken).ConfigureAwait(false);
                    }
                    break;
            }
        }
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A readable stream of the archive, produced on a background task while the reader consumes it.</summary>
    public static (Stream Reader, Task Producer) Stream(InjectedTree tree, CancellationToken cancellationToken, IReadOnlySet<string>? omittedDirectories = null)
    {
        // Large segments: the HTTP upload then sends big chunks instead of one per 4 KiB segment.
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 4 * 1024 * 1024, resumeWriterThreshold: 2 * 1024 * 1024, minimumSegmentSize: 256 * 1024));
        var producer = Task.Run(async () =>
        {
            var output = pipe.Writer.AsStream();
            try
            {
                await WriteAsync(tree, output, cancellationToken, omittedDirectories).ConfigureAwait(false);
                await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e).ConfigureAwait(false);
                throw;
            }
        }, cancellationToken);
        return (pipe.Reader.AsStream(), producer);
    }

    private static FileStream OpenForReading(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile_4", path, e.Message.TrimEnd('.')), path, e);
        }
    }

    private static string ReadLink(string path)
    {
        var target = new StringBuilder(4096);
        var length = Syscall.readlink(path, target);
        if (length < 0)
        {
            throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile_5", path, Stdlib.GetLastError()), path);
        }
        return target.ToString(0, (int)length);
    }

    internal static IReadOnlyDictionary<string, byte[]> ReadXattrs(string path)
    {
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (Syscall.llistxattr(path, out string[] names) < 0 || names is null)
        {
            return result;
        }
        foreach (var name in names)
        {
            if (CarriedXattrPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal))
                && Syscall.lgetxattr(path, name, out byte[] value) >= 0 && value is not null)
            {
                result[name] = value;
            }
        }
        return result;
    }
}
