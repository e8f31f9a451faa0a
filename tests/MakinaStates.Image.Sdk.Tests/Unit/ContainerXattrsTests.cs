using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>save-acls.sh's getfacl and getfattr text becomes the binary xattr values a layer tar carries.</summary>
[TestClass]
public sealed class ContainerXattrsTests
{
    [TestMethod]
    public void Getfacl_text_becomes_the_kernels_binary_acl_access_and_default_with_named_entries_and_mask()
    {
        // As Debian 12's getfacl -R -s -p -n writes it (a tab before #effective, a name with a space left as it is, a
        // backslash doubled, a newline in octal), and an older getfacl's \040.
        const string text = "# file: /srv/sh dir\n# owner: 0\n# group: 0\n# flags: -s-\nuser::rwx\nuser:1000:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n"
            + "default:user::rwx\ndefault:group::r-x\ndefault:group:4243:r-x\ndefault:mask::r-x\ndefault:other::r-x\n\n"
            + "# file: /srv/a\\\\b\\012c\n# owner: 0\n# group: 0\nuser::rw-\ngroup::r--\ngroup:50:rw-\t#effective:r--\nuser:7:r--\nmask::r--\nother::---\n\n"
            + "# file: /srv/old\\040style\nuser::rwx\ngroup::r-x\nother::r-x\ndefault:user::rwx\ndefault:group::r-x\ndefault:other::---\n";

        var acls = ContainerXattrs.ParseAcls(text);

        CollectionAssert.AreEquivalent(new[] { "srv/sh dir", "srv/a\\b\nc", "srv/old style" }, acls.Keys.ToArray());
        // What Debian 12's kernel answered for user::rwx user:1000:rwx group::r-x mask::r-x other::r-x (getfattr -e hex).
        Assert.AreEqual("0200000001000700ffffffff02000700e803000004000500ffffffff10000700ffffffff20000500ffffffff",
            Convert.ToHexStringLower(acls["srv/sh dir"][ContainerXattrs.Access]));
        Assert.AreEqual("0200000001000700ffffffff04000500ffffffff08000500" + "93100000" + "10000500ffffffff20000500ffffffff",
            Convert.ToHexStringLower(acls["srv/sh dir"][ContainerXattrs.Default]));
        // Sorted by tag then id, whatever the order of the lines: user:7 before group::, group:50 after it.
        var named = PosixAcl.Parse(acls["srv/a\\b\nc"][ContainerXattrs.Access])!;
        Assert.AreEqual("u::rw-,u:7:r--,g::r--,g:50:rw-,m::r--,o::---", PosixAcl.Text(named.Entries));
        Assert.IsFalse(acls["srv/a\\b\nc"].ContainsKey(ContainerXattrs.Default));
        // The base entries alone are the mode: no access ACL value, the default one stays.
        CollectionAssert.AreEqual(new[] { ContainerXattrs.Default }, acls["srv/old style"].Keys.ToArray());
    }

    [TestMethod]
    public void The_encoding_is_what_the_kernel_stores_for_acls_set_on_this_host()
    {
        var root = Directory.CreateTempSubdirectory("xattrs-oracle-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "shared dir"));
            File.WriteAllText(Path.Combine(root, "file"), "x");
            HostProcess.Run("setfacl", "-m", "u:4242:rw,g:50:rx,u:7:r", Path.Combine(root, "file"));
            HostProcess.Run("setfacl", "-m", "g:4243:rwx", "-d", "-m", "u:1000:rwx,g:4243:rx", Path.Combine(root, "shared dir"));

            var acls = ContainerXattrs.ParseAcls(HostProcess.Run("getfacl", "-R", "-s", "-p", "-n", root));

            var prefix = root.TrimStart('/') + "/";
            foreach (var name in new[] { "file", "shared dir" })
            {
                var kernel = HostFileReader.Default.ReadXattrs(Path.Combine(root, name));
                var parsed = acls[prefix + name];
                CollectionAssert.AreEquivalent(kernel.Keys.Where(k => k.StartsWith("system.posix_acl", StringComparison.Ordinal)).ToArray(), parsed.Keys.ToArray(), name);
                foreach (var (key, value) in parsed)
                {
                    CollectionAssert.AreEqual(kernel[key], value, $"{name} {key}");
                }
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestMethod]
    public void Getfattr_hex_base64_and_quoted_values_become_their_bytes_and_merge_with_the_acls()
    {
        const string xattrs = "# file: /srv/sh dir\nuser.k=0x762031\nuser.bin=0x00ff10\n\n# file: /opt/x\nuser.b64=0sAP8Q\nuser.text=\"a\\012b\"\nuser.empty\n";
        const string acls = "# file: /srv/sh dir\nuser::rwx\nuser:1000:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n";

        var map = ContainerXattrs.Parse(acls, xattrs);

        CollectionAssert.AreEquivalent(new[] { ContainerXattrs.Access, "user.k", "user.bin" }, map["srv/sh dir"].Keys.ToArray());
        CollectionAssert.AreEqual("v 1"u8.ToArray(), map["srv/sh dir"]["user.k"]);
        CollectionAssert.AreEqual(new byte[] { 0, 0xFF, 0x10 }, map["srv/sh dir"]["user.bin"]);
        CollectionAssert.AreEqual(new byte[] { 0, 0xFF, 0x10 }, map["opt/x"]["user.b64"]);
        CollectionAssert.AreEqual("a\nb"u8.ToArray(), map["opt/x"]["user.text"]);
        Assert.AreEqual(0, map["opt/x"]["user.empty"].Length);
        Assert.AreEqual(0, ContainerXattrs.Parse("", "").Count);
    }

    [TestMethod]
    [DataRow("user::rwx\nbogus::rwx\ngroup::r-x\nother::r-x\n", "unknown tag 'bogus'")]
    [DataRow("user::rwx\nuser:alice:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n", "not a numeric id")]
    [DataRow("user::rwx\ngroup::r-x\nother::rwz\n", "not rwx permissions")]
    [DataRow("user::rwx\ngroup::r-x\nother\n", "not tag:qualifier:permissions")]
    [DataRow("user::rwx\nuser:5:rwx\ngroup::r-x\nother::r-x\n", "mask:: with named entries")]
    [DataRow("user::rwx\nother::r-x\n", "one user::, group:: and other::")]
    public void An_unknown_tag_or_a_malformed_line_is_a_coded_error(string entries, string reason)
    {
        var error = Assert.ThrowsExactly<ImageBuildException>(() => ContainerXattrs.ParseAcls("# file: /srv/x\n" + entries));

        Assert.AreEqual(MsiCodes.XattrListInvalid, error.Code);
        StringAssert.Contains(error.Message, reason);
        StringAssert.Contains(error.Message, "/acls.txt");
    }

    [TestMethod]
    public void Entries_before_any_file_line_and_bad_values_are_coded_errors()
    {
        Assert.AreEqual(MsiCodes.XattrListInvalid, Assert.ThrowsExactly<ImageBuildException>(() => ContainerXattrs.ParseAcls("user::rwx\n")).Code);
        var error = Assert.ThrowsExactly<ImageBuildException>(() => ContainerXattrs.ParseXattrs("# file: /a\nuser.x=0xZZ\n"));
        Assert.AreEqual(MsiCodes.XattrListInvalid, error.Code);
        StringAssert.Contains(error.Message, "/xattrs.txt");
        Assert.AreEqual(MsiCodes.XattrListInvalid, Assert.ThrowsExactly<ImageBuildException>(() => ContainerXattrs.ParseXattrs("# file: /a\nuser.x=raw\n")).Code);
    }
}
