using System.Formats.Tar;
using System.Text;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The tar stream of the injected tree, read back by System.Formats.Tar and extracted by GNU tar.</summary>
[TestClass]
public sealed class InjectedTreeArchiveTests
{
    private string _root = "";

    [TestInitialize]
    public void CreateTree()
    {
        _root = Directory.CreateTempSubdirectory("tree-").FullName;
        var src = Path.Combine(_root, "src");
        Directory.CreateDirectory(Path.Combine(src, "etc", "app"));
        Directory.CreateDirectory(Path.Combine(src, "empty dir"));
        File.WriteAllText(Path.Combine(src, "etc", "app", "conf ünïcode.txt"), "hello");
        File.WriteAllText(Path.Combine(src, "etc", "app", "setuid"), "#!/bin/sh\n");
        // chown clears setuid, so owner first.
        Assert.AreEqual(0, Syscall.lchown(Path.Combine(src, "etc", "app", "setuid"), 4242, 4243));
        Assert.AreEqual(0, Syscall.chmod(Path.Combine(src, "etc", "app", "setuid"), (FilePermissions)Convert.ToUInt32("4755", 8)));
        File.CreateSymbolicLink(Path.Combine(src, "etc", "relative"), "app/conf ünïcode.txt");
        File.CreateSymbolicLink(Path.Combine(src, "etc", "absolute"), "/etc/hostname");
        File.CreateSymbolicLink(Path.Combine(src, "etc", "dangling"), "/nowhere/at/all");
        File.WriteAllText(Path.Combine(src, "first"), "linked");
        Assert.AreEqual(0, Syscall.link(Path.Combine(src, "first"), Path.Combine(src, "second")));
        Assert.AreEqual(0, Syscall.lsetxattr(Path.Combine(src, "first"), "user.binary", [0x92, 0x00, 0xFF, 0x41]));
    }

    [TestCleanup]
    public void RemoveTree() => Directory.Delete(_root, recursive: true);

    [TestMethod]
    public async Task Archive_keeps_types_modes_owners_and_links()
    {
        var tree = InjectedTree.Collect([new InjectedTree.Source(Path.Combine(_root, "src"), "/opt/x/")]);
        using var buffer = new MemoryStream();
        await InjectedTreeArchive.WriteAsync(tree, buffer, CancellationToken.None);
        buffer.Position = 0;

        var entries = new Dictionary<string, TarEntry>();
        using (var reader = new TarReader(buffer, leaveOpen: true))
        {
            while (reader.GetNextEntry(copyData: true) is { } entry)
            {
                entries[entry.Name] = entry;
            }
        }

        Assert.AreEqual(TarEntryType.Directory, entries["opt/x/"].EntryType);
        Assert.AreEqual(TarEntryType.Directory, entries["opt/x/empty dir/"].EntryType);
        Assert.AreEqual("hello", new StreamReader(entries["opt/x/etc/app/conf ünïcode.txt"].DataStream!).ReadToEnd());
        var setuid = entries["opt/x/etc/app/setuid"];
        Assert.AreEqual(4242, setuid.Uid);
        Assert.AreEqual(4243, setuid.Gid);
        Assert.IsTrue(setuid.Mode.HasFlag(UnixFileMode.SetUser), setuid.Mode.ToString());
        Assert.AreEqual(TarEntryType.SymbolicLink, entries["opt/x/etc/relative"].EntryType);
        Assert.AreEqual("app/conf ünïcode.txt", entries["opt/x/etc/relative"].LinkName);
        Assert.AreEqual("/etc/hostname", entries["opt/x/etc/absolute"].LinkName);
        Assert.AreEqual("/nowhere/at/all", entries["opt/x/etc/dangling"].LinkName);
        Assert.AreEqual(TarEntryType.RegularFile, entries["opt/x/first"].EntryType);
        Assert.AreEqual(TarEntryType.HardLink, entries["opt/x/second"].EntryType);
        Assert.AreEqual("opt/x/first", entries["opt/x/second"].LinkName);

        // Binary xattr values travel byte for byte in the PAX record (System.Formats.Tar would re-encode them).
        var raw = buffer.ToArray();
        var record = Encoding.ASCII.GetBytes("SCHILY.xattr.user.binary=").Concat(new byte[] { 0x92, 0x00, 0xFF, 0x41, (byte)'\n' }).ToArray();
        Assert.IsTrue(raw.AsSpan().IndexOf(record) >= 0, "raw xattr record not found in the archive");
    }

    [TestMethod]
    public async Task Acls_travel_as_the_kernels_raw_xattr_values()
    {
        var src = Path.Combine(_root, "src");
        HostProcess.Run("setfacl", "-m", "u:4242:rw", Path.Combine(src, "first"));
        HostProcess.Run("setfacl", "-d", "-m", "g:4243:rx", Path.Combine(src, "etc"));
        Assert.IsTrue(Syscall.lgetxattr(Path.Combine(src, "first"), "system.posix_acl_access", out byte[] access) > 0);
        Assert.IsTrue(Syscall.lgetxattr(Path.Combine(src, "etc"), "system.posix_acl_default", out byte[] defaults) > 0);

        var tree = InjectedTree.Collect([new InjectedTree.Source(src, "/")]);
        using var buffer = new MemoryStream();
        await InjectedTreeArchive.WriteAsync(tree, buffer, CancellationToken.None);
        var raw = buffer.ToArray();
        byte[] Record(string name, byte[] value) => Encoding.ASCII.GetBytes($"SCHILY.xattr.{name}=").Concat(value).Append((byte)'\n').ToArray();
        Assert.IsTrue(raw.AsSpan().IndexOf(Record("system.posix_acl_access", access)) >= 0, "access ACL record missing");
        Assert.IsTrue(raw.AsSpan().IndexOf(Record("system.posix_acl_default", defaults)) >= 0, "default ACL record missing");
    }

    [TestMethod]
    public async Task Times_before_1970_with_a_fraction_are_written_as_valid_pax_records()
    {
        using var buffer = new MemoryStream();
        var writer = new PaxTarWriter(buffer);
        var time = DateTimeOffset.UnixEpoch.AddSeconds(-1.5);
        await writer.WriteEntryAsync(new PaxTarWriter.Entry("old", PaxTarWriter.EntryType.Directory, 0x1ED, 0, 0, time), null, CancellationToken.None);
        await writer.FinishAsync(CancellationToken.None);
        Assert.IsTrue(buffer.ToArray().AsSpan().IndexOf("mtime=-1.5000000\n"u8) >= 0, "the sign applies to the whole decimal");
        buffer.Position = 0;
        using var reader = new TarReader(buffer);
        Assert.AreEqual(time, reader.GetNextEntry()!.ModificationTime);
    }

    [TestMethod]
    public async Task Gnu_tar_reads_the_archive_back()
    {
        var src = Path.Combine(_root, "src");
        var tree = InjectedTree.Collect([new InjectedTree.Source(src, "/")]);
        var archive = Path.Combine(_root, "tree.tar");
        await using (var file = File.Create(archive))
        {
            await InjectedTreeArchive.WriteAsync(tree, file, CancellationToken.None);
        }
        var dest = Directory.CreateDirectory(Path.Combine(_root, "dest")).FullName;
        HostProcess.Run("tar", "--xattrs", "--xattrs-include=user.*", "--numeric-owner", "-xpf", archive, "-C", dest);

        Assert.IsTrue(Syscall.lgetxattr(Path.Combine(dest, "first"), "user.binary", out byte[] value) > 0);
        CollectionAssert.AreEqual(new byte[] { 0x92, 0x00, 0xFF, 0x41 }, value);
        Assert.AreEqual(0, Syscall.lstat(Path.Combine(dest, "second"), out var second));
        Assert.AreEqual(0, Syscall.lstat(Path.Combine(dest, "first"), out var first));
        Assert.AreEqual(first.st_ino, second.st_ino, "hardlink pair became two files");
        Assert.AreEqual(0, Syscall.lstat(Path.Combine(dest, "etc", "app", "setuid"), out var setuid));
        Assert.AreEqual((4242u, 4243u), (setuid.st_uid, setuid.st_gid));
        Assert.AreEqual("4755", Convert.ToString((uint)setuid.st_mode & 0xFFF, 8));
        Assert.AreEqual("/nowhere/at/all", new FileInfo(Path.Combine(dest, "etc", "dangling")).LinkTarget);
        Assert.AreEqual("hello", File.ReadAllText(Path.Combine(dest, "etc", "app", "conf ünïcode.txt")));
        Assert.IsTrue(Directory.Exists(Path.Combine(dest, "empty dir")));
    }

    /// <summary>A reader of the host's files that counts each read, by kind and path.</summary>
    private sealed class CountingReader : HostFileReader
    {
        public Dictionary<(string Kind, string Path), int> Reads { get; } = [];

        private void Count(string kind, string path) => Reads[(kind, path)] = Reads.GetValueOrDefault((kind, path)) + 1;

        public override bool TryLstat(string path, out Stat stat) { Count("lstat", path); return base.TryLstat(path, out stat); }

        public override IReadOnlyDictionary<string, byte[]> ReadXattrs(string path) { Count("xattrs", path); return base.ReadXattrs(path); }

        public override string ReadLink(string path) { Count("readlink", path); return base.ReadLink(path); }

        public override Microsoft.Win32.SafeHandles.SafeFileHandle OpenForReading(string path, long size) { Count("open", path); return base.OpenForReading(path, size); }

        public override Stat StatOf(Microsoft.Win32.SafeHandles.SafeFileHandle file, string path) { Count("fstat", path); return base.StatOf(file, path); }
    }

    [TestMethod]
    public async Task Each_node_is_stated_and_its_xattrs_read_once_from_collection_to_archive()
    {
        var src = Path.Combine(_root, "src");
        HostProcess.Run("setfacl", "-m", "u:4242:rw", Path.Combine(src, "first"));
        HostProcess.Run("setfacl", "-d", "-m", "g:4243:rx", Path.Combine(src, "etc"));
        var reader = new CountingReader();

        // All that Stage0 and Stage2 do with a tree: collect, fingerprint, archive, the ACL list, the existing folders' script.
        var tree = InjectedTree.Collect([new InjectedTree.Source(src, "/opt/x/")], reader);
        TreeFingerprint.Compute(tree.Nodes, ContentHashCache.Load(null));
        await InjectedTreeArchive.WriteAsync(tree, Stream.Null, CancellationToken.None, changed: new Dictionary<string, SentContent>());
        AclRestoreList.Build(tree);
        ExistingFolderMetadata.Script(tree, tree.Nodes.Select(n => n.ImagePath).ToHashSet(), ExistingFolderMetadata.All);

        var nodes = tree.Nodes.Select(n => n.HostPath).ToList();
        Assert.AreEqual(11, nodes.Count);
        foreach (var path in nodes)
        {
            Assert.AreEqual(1, reader.Reads.GetValueOrDefault(("lstat", path)), $"lstat of {path}");
            Assert.AreEqual(1, reader.Reads.GetValueOrDefault(("xattrs", path)), $"xattrs of {path}");
        }
        foreach (var link in new[] { "etc/relative", "etc/absolute", "etc/dangling" })
        {
            Assert.AreEqual(1, reader.Reads[("readlink", Path.Combine(src, link))], link);
        }
        // The archive opens each file once (the hardlink's second name travels as a link) and stats it as opened and
        // once more after sending it (a file that changed while it was read is an error), by its handle, not its path.
        foreach (var file in new[] { "first", "etc/app/setuid", "etc/app/conf ünïcode.txt" })
        {
            Assert.AreEqual(1, reader.Reads[("open", Path.Combine(src, file))], file);
            Assert.AreEqual(2, reader.Reads[("fstat", Path.Combine(src, file))], file);
        }
        Assert.AreEqual(nodes.Count * 2 + 3 + 3 * 3, reader.Reads.Values.Sum(), string.Join(", ", reader.Reads.Select(r => $"{r.Key.Kind} {r.Key.Path}: {r.Value}")));
    }

    [TestMethod]
    public async Task Small_files_reach_the_output_in_writes_of_the_whole_buffer()
    {
        var src = Directory.CreateDirectory(Path.Combine(_root, "many")).FullName;
        for (var i = 0; i < 2000; i++)
        {
            File.WriteAllText(Path.Combine(src, $"f{i:0000}"), $"file {i}\n");
        }
        var output = new WriteSizes();
        await InjectedTreeArchive.WriteAsync(InjectedTree.Collect([new InjectedTree.Source(src, "/srv/")]), output, CancellationToken.None);

        // 2,001 entries of 2 KiB: about 4 MiB, in writes of the whole buffer, not 6 per entry.
        Assert.AreEqual((output.Length + PaxTarWriter.BufferSize - 1) / PaxTarWriter.BufferSize, output.Sizes.Count, $"{output.Sizes.Count} writes");
        Assert.IsTrue(output.Sizes.SkipLast(1).All(size => size == PaxTarWriter.BufferSize), string.Join(", ", output.Sizes));
    }

    private sealed class WriteSizes : MemoryStream
    {
        public List<int> Sizes { get; } = [];

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Sizes.Add(buffer.Length);
            return base.WriteAsync(buffer, cancellationToken);
        }
    }

    [TestMethod]
    public async Task A_file_edited_after_collection_is_sent_as_it_is_now_with_the_hash_of_what_was_sent()
    {
        var src = Path.Combine(_root, "src");
        var tree = InjectedTree.Collect([new InjectedTree.Source(src, "/")]);
        // Larger than the writer's buffer, and not a multiple of it: the content and its hash cross the buffer's end.
        var edited = new byte[PaxTarWriter.BufferSize * 2 + 777];
        Random.Shared.NextBytes(edited);
        var path = Path.Combine(src, "etc", "app", "setuid");
        File.WriteAllBytes(path, edited);
        var changed = new Dictionary<string, SentContent>();
        using var buffer = new MemoryStream();
        await InjectedTreeArchive.WriteAsync(tree, buffer, CancellationToken.None, changed: changed);

        Assert.AreEqual(new SentContent(edited.Length, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(edited))), changed[path]);
        Assert.AreEqual(1, changed.Count);
        buffer.Position = 0;
        using var reader = new TarReader(buffer);
        while (reader.GetNextEntry(copyData: true) is { } entry)
        {
            if (entry.Name == "etc/app/setuid")
            {
                using var content = new MemoryStream();
                entry.DataStream!.CopyTo(content);
                CollectionAssert.AreEqual(edited, content.ToArray());
                return;
            }
        }
        Assert.Fail("the edited file is missing");
    }
}
