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
    internal static readonly string[] CarriedXattrPrefixes = [PosixAcl.AccessXattr, PosixAcl.DefaultXattr, "user.", "security.capability"];

    /// <param name="omittedDirectories">Folders (image paths) whose own entry is not written; their content is.</param>
    /// <param name="changed">Receives, by host path, each file whose content changed after the tree was collected
    /// (edited while the build ran): what was sent of it, so the inputs key can describe the tree that was sent.</param>
    public static async Task WriteAsync(InjectedTree tree, Stream output, CancellationToken cancellationToken, IReadOnlySet<string>? omittedDirectories = null,
        IDictionary<string, SentContent>? changed = null)
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
                Xattrs = node.Xattrs,
            };

            switch (type)
            {
                case FilePermissions.S_IFDIR when omittedDirectories?.Contains(node.ImagePath) == true:
                    break;
                case FilePermissions.S_IFDIR:
                    await writer.WriteEntryAsync(entry with { Name = node.ImagePath + "/", Type = PaxTarWriter.EntryType.Directory }, null, cancellationToken).ConfigureAwait(false);
                    break;
                case FilePermissions.S_IFLNK:
                    await writer.WriteEntryAsync(entry with { Type = PaxTarWriter.EntryType.Symlink, LinkName = node.LinkTarget }, null, cancellationToken).ConfigureAwait(false);
                    break;
                // A host file met again (a hardlink, or the same file laid at two places of the tree, as under
                // /docker/injected_volumes) travels once; the other places link to it.
                case FilePermissions.S_IFREG when firstPathOfInode.TryGetValue((stat.st_dev, stat.st_ino), out var first):
                    await writer.WriteEntryAsync(entry with { Type = PaxTarWriter.EntryType.HardLink, LinkName = first, Xattrs = new Dictionary<string, byte[]>() }, null, cancellationToken).ConfigureAwait(false);
                    break;
                case FilePermissions.S_IFREG:
                    firstPathOfInode[(stat.st_dev, stat.st_ino)] = node.ImagePath;
                    await WriteFileAsync(writer, entry, node, tree.Reader, changed, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A file's entry. The file as opened is compared with the file as collected: one edited since (during the build)
    /// is sent as it is now and reported with its content hash, taken from the very bytes sent; one that changes while
    /// it is being read is an error, as the entry would hold neither version.
    /// </summary>
    private static async Task WriteFileAsync(PaxTarWriter writer, PaxTarWriter.Entry entry, InjectedTree.Node node, HostFileReader files,
        IDictionary<string, SentContent>? changed, CancellationToken cancellationToken)
    {
        using var content = files.OpenForReading(node.HostPath, node.Stat.st_size);
        var opened = files.StatOf(content, node.HostPath);
        if (SameContentStamp(opened, node.Stat))
        {
            await writer.WriteEntryAsync(entry with { Size = node.Stat.st_size }, content, null, cancellationToken).ConfigureAwait(false);
            ThrowIfChangedWhileSent(files, content, node.HostPath, opened);
            return;
        }
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        await writer.WriteEntryAsync(entry with { Size = opened.st_size }, content, sha, cancellationToken).ConfigureAwait(false);
        ThrowIfChangedWhileSent(files, content, node.HostPath, opened);
        changed?.Add(node.HostPath, new SentContent(opened.st_size, Convert.ToHexStringLower(sha.GetHashAndReset())));
    }

    /// <summary>Device, inode, size and modification time: what says a file's content is the one that was collected.</summary>
    private static bool SameContentStamp(Stat a, Stat b) =>
        a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size && a.st_mtime == b.st_mtime && a.st_mtime_nsec == b.st_mtime_nsec;

    private static void ThrowIfChangedWhileSent(HostFileReader files, Microsoft.Win32.SafeHandles.SafeFileHandle file, string path, Stat opened)
    {
        if (!SameContentStamp(files.StatOf(file, path), opened))
        {
            throw new ImageBuildException(MsiCodes.InjectedFileChangedWhileSent, MsiMessages.Format("InjectedFileChangedWhileSent", path), path);
        }
    }

    /// <summary>A readable stream of the archive, produced on a background task while the reader consumes it.</summary>
    /// <remarks>The writer writes <see cref="PaxTarWriter.BufferSize"/> bytes at a time: each write is one flush of the
    /// pipe, so the upload reads (and sends as one chunk of its body) as much, not a few hundred bytes per entry.</remarks>
    public static (Stream Reader, Task Producer) Stream(InjectedTree tree, CancellationToken cancellationToken, IReadOnlySet<string>? omittedDirectories = null,
        IDictionary<string, SentContent>? changed = null)
    {
        // Large segments: the HTTP upload then sends big chunks instead of one per 4 KiB segment.
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 4 * 1024 * 1024, resumeWriterThreshold: 2 * 1024 * 1024, minimumSegmentSize: 256 * 1024));
        var producer = Task.Run(async () =>
        {
            var output = pipe.Writer.AsStream();
            try
            {
                await WriteAsync(tree, output, cancellationToken, omittedDirectories, changed).ConfigureAwait(false);
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
}
