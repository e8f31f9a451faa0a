using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// Every read the injection makes of a host file: its stat, its xattrs and link when the tree is collected, then its
/// content and the stat of the file as opened when the archive is written. One home, so that a test can count them:
/// each node is stat'ed and its xattrs listed once (the fingerprint, the archive and the ACL lists use what the tree
/// holds), each file opened once by the archive.
/// </summary>
public class HostFileReader
{
    public static readonly HostFileReader Default = new();

    /// <summary>The node's own stat (a link is not followed); false when it cannot be read (errno in Stdlib.GetLastError).</summary>
    public virtual bool TryLstat(string path, out Stat stat) => Syscall.lstat(path, out stat) == 0;

    /// <summary>The xattrs that travel (<see cref="InjectedTreeArchive.CarriedXattrPrefixes"/>), by name.</summary>
    public virtual IReadOnlyDictionary<string, byte[]> ReadXattrs(string path)
    {
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        if (Syscall.llistxattr(path, out string[] names) < 0 || names is null)
        {
            return result;
        }
        foreach (var name in names)
        {
            if (InjectedTreeArchive.CarriedXattrPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal))
                && Syscall.lgetxattr(path, name, out byte[] value) >= 0 && value is not null)
            {
                result[name] = value;
            }
        }
        return result;
    }

    public virtual string ReadLink(string path)
    {
        var target = new System.Text.StringBuilder(4096);
        var length = Syscall.readlink(path, target);
        if (length < 0)
        {
            throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile_5", path, Stdlib.GetLastError()), path);
        }
        return target.ToString(0, (int)length);
    }

    /// <summary>
    /// A file opened for its content: a plain handle, read with plain reads by the archive's producer (no FileStream,
    /// no asynchronous handle: for a small file, the hand-off to the thread pool costs more than the read).
    /// </summary>
    public virtual SafeFileHandle OpenForReading(string path, long size)
    {
        try
        {
            // The read-ahead hint only where there is something to read ahead (one system call less per small file).
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, size > PaxTarWriter.BufferSize ? FileOptions.SequentialScan : FileOptions.None);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile_4", path, e.Message.TrimEnd('.')), path, e);
        }
    }

    /// <summary>The stat of the file as opened (what the archive compares with the stat collected).</summary>
    public virtual Stat StatOf(SafeFileHandle file, string path)
    {
        if (Syscall.fstat((int)file.DangerousGetHandle(), out var stat) != 0)
        {
            throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile_4", path, Stdlib.GetLastError()), path);
        }
        return stat;
    }
}
