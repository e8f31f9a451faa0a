using MakinaStates.Image.Sdk.Injection;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// A stopped container's writable layer as a layer tar, read from its overlay upper dir on this machine: the files
/// `docker commit` puts in the layer, with the ACLs and user xattrs that commit drops (moby's layer export keeps only
/// security.capability). It costs the top layer, not the image, where `docker save` would send every layer.
/// Written as moby's overlay2 diff does: whiteout devices as `.wh.` files, opaque folders as `.wh..wh..opq`, times in
/// whole seconds, sockets left out; and, so that the same content gives the same bytes, entries in name order (a
/// folder before what it holds; overlayfs' readdir order is not stable), the first name of a set of hard links (in
/// that order) as the file, and times after the epoch clamped to it.
/// </summary>
public sealed class UpperDirLayer
{
    private const string OverlayXattrPrefix = "trusted.overlay.";

    /// <summary>An entry and, for a file with content, where it is read from.</summary>
    private sealed record Item(PaxTarWriter.Entry Entry, string? ContentPath);

    private readonly List<Item> _items = [];

    private UpperDirLayer(string upperDir) => UpperDir = upperDir;

    public string UpperDir { get; }

    /// <summary>The tar's length in bytes, known before it is written (the load archive's header needs it).</summary>
    public long Length { get; private set; }

    public int EntryCount => _items.Count;

    /// <summary>Reads every entry's metadata (one lstat and one xattr list per path). Content is read when written.</summary>
    /// <exception cref="NotSupportedException">A layer this writer cannot reproduce (a device, a redirected or
    /// metacopy-only path): the caller takes the engine's own layer instead.</exception>
    public static UpperDirLayer Collect(string upperDir, DateTimeOffset? epoch)
    {
        var layer = new UpperDirLayer(upperDir);
        var firstNameOfInode = new Dictionary<(ulong Device, ulong Inode), string>();
        layer.Walk(upperDir, "", epoch, firstNameOfInode);
        layer.Length = layer._items.Sum(i => PaxTarWriter.LengthOf(i.Entry)) + 1024;
        return layer;
    }

    /// <summary>Writes the tar; its digest (the layer's diff id).</summary>
    public async Task<string> WriteAsync(Stream output, CancellationToken cancellationToken)
    {
        var hashed = new Sha256Stream(output);
        var writer = new PaxTarWriter(hashed);
        foreach (var item in _items)
        {
            if (item.ContentPath is null)
            {
                await writer.WriteEntryAsync(item.Entry, null, cancellationToken).ConfigureAwait(false);
                continue;
            }
            await using var content = new FileStream(item.ContentPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.SequentialScan);
            await writer.WriteEntryAsync(item.Entry, content, cancellationToken).ConfigureAwait(false);
        }
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
        if (hashed.Count != Length)
        {
            throw new IOException($"the layer read from {UpperDir} changed while it was written ({hashed.Count} bytes, {Length} expected)");
        }
        return hashed.Digest();
    }

    private void Walk(string directory, string prefix, DateTimeOffset? epoch, Dictionary<(ulong, ulong), string> firstNameOfInode)
    {
        var names = Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).OfType<string>().ToList();
        names.Sort(StringComparer.Ordinal);
        foreach (var name in names)
        {
            var path = Path.Combine(directory, name);
            var entryName = prefix + name;
            if (Syscall.lstat(path, out var stat) != 0)
            {
                throw new IOException($"{path}: {Stdlib.GetLastError()}");
            }
            var type = stat.st_mode & FilePermissions.S_IFMT;
            var mode = (int)(stat.st_mode & ~FilePermissions.S_IFMT);
            // moby writes whole seconds; the epoch clamps what is newer.
            var mtime = DateTimeOffset.FromUnixTimeSeconds(stat.st_mtime);
            if (epoch is { } clamp && mtime > clamp)
            {
                mtime = clamp;
            }
            PaxTarWriter.Entry Entry(string entryName, PaxTarWriter.EntryType entryType, int entryMode) =>
                new(entryName, entryType, entryMode, stat.st_uid, stat.st_gid, mtime);

            switch (type)
            {
                case FilePermissions.S_IFSOCK:
                    continue;
                case FilePermissions.S_IFCHR when stat.st_rdev == 0:
                    // overlayfs' whiteout: the path was deleted.
                    _items.Add(new Item(Entry(prefix + ".wh." + name, PaxTarWriter.EntryType.File, 0x180), null));
                    continue;
                case FilePermissions.S_IFCHR or FilePermissions.S_IFBLK:
                    throw new NotSupportedException($"{entryName} is a device");
            }
            var (xattrs, opaque) = ReadXattrs(path, entryName);
            switch (type)
            {
                case FilePermissions.S_IFDIR:
                    _items.Add(new Item(Entry(entryName + "/", PaxTarWriter.EntryType.Directory, mode) with { Xattrs = xattrs }, null));
                    if (opaque)
                    {
                        // Hides what the lower layers hold in this folder (moby's form: a marker file with the folder's owner, time 0).
                        _items.Add(new Item(Entry(entryName + "/.wh..wh..opq", PaxTarWriter.EntryType.File, mode & 0x1FF) with { ModificationTime = DateTimeOffset.UnixEpoch }, null));
                    }
                    Walk(path, entryName + "/", epoch, firstNameOfInode);
                    break;
                case FilePermissions.S_IFLNK:
                    var target = HostFileReader.Default.ReadLink(path);
                    _items.Add(new Item(Entry(entryName, PaxTarWriter.EntryType.Symlink, mode) with { LinkName = target, Xattrs = xattrs }, null));
                    break;
                case FilePermissions.S_IFIFO:
                    _items.Add(new Item(Entry(entryName, PaxTarWriter.EntryType.Fifo, mode) with { Xattrs = xattrs }, null));
                    break;
                case FilePermissions.S_IFREG:
                    if (stat.st_nlink > 1)
                    {
                        if (firstNameOfInode.TryGetValue((stat.st_dev, stat.st_ino), out var first))
                        {
                            _items.Add(new Item(Entry(entryName, PaxTarWriter.EntryType.HardLink, mode) with { LinkName = first }, null));
                            break;
                        }
                        firstNameOfInode[(stat.st_dev, stat.st_ino)] = entryName;
                    }
                    _items.Add(new Item(Entry(entryName, PaxTarWriter.EntryType.File, mode) with { Size = stat.st_size, Xattrs = xattrs },
                        stat.st_size > 0 ? path : null));
                    break;
                default:
                    throw new NotSupportedException($"{entryName} has a file type ({type}) a layer does not hold");
            }
        }
    }

    /// <summary>The xattrs that travel (ACLs, user.*, security.capability), and whether overlayfs marks the folder opaque.</summary>
    private static (IReadOnlyDictionary<string, byte[]> Xattrs, bool Opaque) ReadXattrs(string path, string entryName)
    {
        var xattrs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var opaque = false;
        if (Syscall.llistxattr(path, out string[] names) < 0 || names is null)
        {
            return (xattrs, false);
        }
        foreach (var name in names)
        {
            if (name.StartsWith(OverlayXattrPrefix, StringComparison.Ordinal))
            {
                if (name == OverlayXattrPrefix + "opaque")
                {
                    opaque = Syscall.lgetxattr(path, name, out byte[] value) >= 0 && value is [(byte)'y'];
                }
                else if (name is OverlayXattrPrefix + "redirect" or OverlayXattrPrefix + "metacopy")
                {
                    // A renamed folder or a metadata-only copy up: the engine's own diff knows what it means; this walk does not.
                    throw new NotSupportedException($"{entryName} carries {name}");
                }
            }
            else if (InjectedTreeArchive.CarriedXattrPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal))
                     && Syscall.lgetxattr(path, name, out byte[] value) >= 0 && value is not null)
            {
                xattrs[name] = value;
            }
        }
        return (xattrs, opaque);
    }
}
