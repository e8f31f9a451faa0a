using MakinaStates.Image.Sdk.Diagnostics;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// The merged tree that Stage2 copies to the image's '/': each source folder is laid at its target path,
/// later sources win over earlier ones for the same path (image_rootfs/ over injected_volumes/), folders merge.
/// Nothing is followed: symlinks stay links, hardlinks stay hardlinks.
/// </summary>
public sealed class InjectedTree
{
    /// <summary>A host folder and where its content goes in the image (an absolute path).</summary>
    public sealed record Source(string HostPath, string TargetPath, IReadOnlyCollection<string>? ExcludedTopLevelNames = null);

    /// <summary>
    /// One node of the tree: its path in the image (relative, no leading '/'), its host file, and what the host said
    /// of it when the tree was collected (stat, the xattrs that travel, a link's target). Read once: the fingerprint,
    /// the archive and the ACL lists all use these, so what is keyed is what is sent.
    /// </summary>
    public sealed record Node(string ImagePath, string HostPath, Stat Stat, IReadOnlyDictionary<string, byte[]> Xattrs, string? LinkTarget);

    private readonly SortedDictionary<string, Node> _nodes = new(StringComparer.Ordinal);
    private readonly List<string> _skipped = [];

    public IReadOnlyCollection<Node> Nodes => _nodes.Values;

    /// <summary>Sockets, FIFOs and devices found and left out (the archive API cannot carry them meaningfully).</summary>
    public IReadOnlyList<string> Skipped => _skipped;

    /// <summary>Top-level names of injected_volumes/ and image_rootfs/ that are build inputs, not image content.</summary>
    private static readonly string[] BuildOnlyNames = ["bootstrap_scripts"];

    /// <summary>
    /// The seed's defaults, in order: injected_volumes/ as-is, image_rootfs/ overriding it; then the InjectedVolume
    /// items (metadata TargetPath, default '/').
    /// </summary>
    public static IEnumerable<Source> ImageSources(string imageDirectory, IEnumerable<Microsoft.Build.Framework.ITaskItem> injectedVolumes)
    {
        foreach (var folder in new[] { "injected_volumes", "image_rootfs" })
        {
            var path = Path.Combine(imageDirectory, folder);
            if (Directory.Exists(path))
            {
                yield return new Source(path, "/", BuildOnlyNames);
            }
        }
        foreach (var item in injectedVolumes)
        {
            var path = item.GetMetadata("FullPath");
            yield return new Source(string.IsNullOrEmpty(path) ? item.ItemSpec : path, item.GetMetadata("TargetPath") is { Length: > 0 } target ? target : "/");
        }
    }

    /// <summary>How this tree reads its host files: when collected, when sources are added, when its archive is written.</summary>
    internal HostFileReader Reader { get; }

    private InjectedTree(HostFileReader reader) => Reader = reader;

    /// <param name="reader">The host's files as read (tests count the reads); the file system itself by default.</param>
    public static InjectedTree Collect(IEnumerable<Source> sources, HostFileReader? reader = null)
    {
        var tree = new InjectedTree(reader ?? HostFileReader.Default);
        foreach (var source in sources)
        {
            tree.Add(source);
        }
        return tree;
    }

    /// <summary>Validates a TargetPath: absolute, no '..'. Returns it relative to '/' without trailing slash.</summary>
    public static string NormalizeTargetPath(string targetPath, string itemSpec)
    {
        var value = string.IsNullOrWhiteSpace(targetPath) ? "/" : targetPath.Trim().Replace('\\', '/');
        if (!value.StartsWith('/') || value.Split('/').Any(part => part == ".."))
        {
            throw new ImageBuildException(MsiCodes.TargetPathInvalid,
                MsiMessages.Format("TargetPathInvalid", itemSpec, targetPath),
                itemSpec);
        }
        return string.Join('/', value.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != "."));
    }

    /// <summary>Lays one more source over the tree (it wins over what is there, folders merge).</summary>
    public void Add(Source source)
    {
        var target = NormalizeTargetPath(source.TargetPath, source.HostPath);
        if (!Reader.TryLstat(source.HostPath, out var rootStat))
        {
            throw new ImageBuildException(MsiCodes.InjectedVolumeMissing,
                MsiMessages.Format("InjectedVolumeMissing", source.HostPath), source.HostPath);
        }

        if (!IsDirectory(rootStat))
        {
            // A single file injected at TargetPath (a path ending in '/' means "into that folder").
            var name = source.TargetPath.TrimEnd().EndsWith('/') || target.Length == 0
                ? Combine(target, Path.GetFileName(source.HostPath))
                : target;
            Put(name, source.HostPath, rootStat);
            return;
        }

        if (target.Length > 0)
        {
            // The folder itself becomes the target folder: it carries the host folder's mode, owner and ACLs.
            Put(target, source.HostPath, rootStat);
        }
        Walk(source.HostPath, target, source.ExcludedTopLevelNames ?? [], topLevel: true);
    }

    private void Walk(string hostDirectory, string imageDirectory, IReadOnlyCollection<string> excluded, bool topLevel)
    {
        string[] names;
        try
        {
            names = Directory.GetFileSystemEntries(hostDirectory, "*", new EnumerationOptions
            {
                RecurseSubdirectories = false,
                AttributesToSkip = 0,
                IgnoreInaccessible = false,
                ReturnSpecialDirectories = false,
            }).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile", hostDirectory, e.Message), hostDirectory, e);
        }

        foreach (var name in names)
        {
            if (topLevel && excluded.Contains(name))
            {
                continue;
            }
            var hostPath = Path.Combine(hostDirectory, name);
            if (!Reader.TryLstat(hostPath, out var stat))
            {
                throw new ImageBuildException(MsiCodes.UnreadableFile, MsiMessages.Format("UnreadableFile_2", hostPath, Stdlib.GetLastError()), hostPath);
            }
            var imagePath = Combine(imageDirectory, name);
            var type = stat.st_mode & FilePermissions.S_IFMT;
            if (type is FilePermissions.S_IFSOCK or FilePermissions.S_IFIFO or FilePermissions.S_IFCHR or FilePermissions.S_IFBLK)
            {
                _skipped.Add(hostPath);
                continue;
            }
            // Checked now, before any container exists: an unreadable file fails the build early, naming it.
            // (root reads everything: no need to ask the kernel 20,000 times.)
            if (!IsRoot && type is FilePermissions.S_IFREG or FilePermissions.S_IFDIR
                && Syscall.access(hostPath, type == FilePermissions.S_IFDIR ? AccessModes.R_OK | AccessModes.X_OK : AccessModes.R_OK) != 0)
            {
                throw new ImageBuildException(MsiCodes.UnreadableFile,
                    MsiMessages.Format("UnreadableFile_3", (type == FilePermissions.S_IFDIR ? "folder" : "file"), hostPath, Stdlib.GetLastError()),
                    hostPath);
            }
            Put(imagePath, hostPath, stat);
            if (type == FilePermissions.S_IFDIR)
            {
                Walk(hostPath, imagePath, excluded, topLevel: false);
            }
        }
    }

    private void Put(string imagePath, string hostPath, Stat stat)
    {
        // A later source replaces a file, a link or a folder-vs-file clash; two folders merge (the later's metadata wins).
        if (_nodes.TryGetValue(imagePath, out var existing) && IsDirectory(existing.Stat) && !IsDirectory(stat))
        {
            var prefix = imagePath + "/";
            foreach (var key in _nodes.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList())
            {
                _nodes.Remove(key);
            }
        }
        var link = (stat.st_mode & FilePermissions.S_IFMT) == FilePermissions.S_IFLNK ? Reader.ReadLink(hostPath) : null;
        _nodes[imagePath] = new Node(imagePath, hostPath, stat, Reader.ReadXattrs(hostPath), link);
    }

    /// <summary>
    /// Lays nodes already collected under another folder of the image (the seed's /docker/injected_volumes view of the
    /// tree): the same host files, not read again.
    /// </summary>
    public void AddCopy(IEnumerable<Node> nodes, string targetFolder)
    {
        var prefix = NormalizeTargetPath(targetFolder, targetFolder);
        foreach (var node in nodes)
        {
            _nodes[Combine(prefix, node.ImagePath)] = node with { ImagePath = Combine(prefix, node.ImagePath) };
        }
    }

    /// <summary>
    /// The tree's paths in the image ('/srv/pillar/init.sls'), NUL-separated: the list the build's own steps (snapshot.sh,
    /// stage2.sh) read to leave what the user injected alone. NUL, because a file name may hold a newline.
    /// </summary>
    /// <summary>Every image path, NUL-separated, sorted (the same tree gives the same list, in any order of collection).</summary>
    public byte[] PathList() => System.Text.Encoding.UTF8.GetBytes(string.Concat(_nodes.Keys.Order(StringComparer.Ordinal).Select(k => "/" + k + "\0")));

    private static readonly bool IsRoot = Syscall.geteuid() == 0;

    internal static bool IsDirectory(Stat stat) => (stat.st_mode & FilePermissions.S_IFMT) == FilePermissions.S_IFDIR;

    private static string Combine(string parent, string name) => parent.Length == 0 ? name : parent + "/" + name;
}
