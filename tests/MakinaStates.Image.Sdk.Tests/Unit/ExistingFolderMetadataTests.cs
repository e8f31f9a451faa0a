using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The script that gives folders the image already has what rsync -aA would (ACLs read from the host's xattrs).</summary>
[TestClass]
public sealed class ExistingFolderMetadataTests
{
    private string _root = "";

    [TestInitialize]
    public void Create()
    {
        _root = Directory.CreateTempSubdirectory("existing-").FullName;
        Directory.CreateDirectory(Path.Combine(_root, "srv", "projects"));
        Directory.CreateDirectory(Path.Combine(_root, "opt"));
        HostProcess.Run("setfacl", "-m", "u:65534:rx", Path.Combine(_root, "srv"));
        HostProcess.Run("setfacl", "-d", "-m", "u:65534:rx", Path.Combine(_root, "srv"));
        Assert.AreEqual(0, Syscall.chmod(Path.Combine(_root, "opt"), (FilePermissions)Convert.ToUInt32("2775", 8)));
        Assert.AreEqual(0, Syscall.lchown(Path.Combine(_root, "opt"), 4242, 4243));
        Assert.AreEqual(0, Syscall.lsetxattr(Path.Combine(_root, "opt"), "user.role", "data"u8.ToArray()));
    }

    [TestCleanup]
    public void Remove() => Directory.Delete(_root, recursive: true);

    private string? Script(string mode, params string[] existing) =>
        ExistingFolderMetadata.Script(InjectedTree.Collect([new InjectedTree.Source(_root, "/")]), existing.ToHashSet(), mode)?.Script;

    [TestMethod]
    public void Host_acl_xattr_reads_as_setfacl_text()
    {
        Assert.IsTrue(Syscall.lgetxattr(Path.Combine(_root, "srv"), "system.posix_acl_access", out byte[] access) > 0);
        Assert.AreEqual("u::rwx,u:65534:r-x,g::r-x,m::r-x,o::r-x", PosixAcl.Text(PosixAcl.Parse(access)!.Entries));
        Assert.AreEqual("u:65534:r-x", PosixAcl.Text(PosixAcl.Parse(access)!.Named));
        Assert.IsNull(PosixAcl.Parse([1, 0, 0, 0]), "not a version 2 ACL");
    }

    [TestMethod]
    public void Acl_mode_gives_named_entries_and_the_default_acl_and_user_xattrs_but_not_owner_or_mode()
    {
        var script = Script(ExistingFolderMetadata.Acl, "srv", "opt")!;
        StringAssert.Contains(script, "setfacl -b '/srv'\nsetfacl -m 'u:65534:r-x,d:u::rwx,d:u:65534:r-x,d:g::r-x,d:m::r-x,d:o::r-x' '/srv'");
        StringAssert.Contains(script, "setfattr -n 'user.role' -v 0x64617461 '/opt'");
        Assert.IsFalse(script.Contains("chown", StringComparison.Ordinal) || script.Contains("chmod", StringComparison.Ordinal), script);
        Assert.IsFalse(script.Contains("setfacl -b '/opt'", StringComparison.Ordinal), "a folder injected without ACLs leaves the image's:\n" + script);
    }

    [TestMethod]
    public void All_mode_also_gives_owner_and_mode_and_exactly_the_acl()
    {
        var script = Script(ExistingFolderMetadata.All, "srv", "opt")!;
        StringAssert.Contains(script, "chown 4242:4243 '/opt'\nsetfacl -b '/opt'\nchmod 2775 '/opt'\n");
        StringAssert.Contains(script, "setfacl -m 'u::rwx,u:65534:r-x,g::r-x,m::r-x,o::r-x,d:u::rwx,d:u:65534:r-x,d:g::r-x,d:m::r-x,d:o::r-x' '/srv'");
    }

    [TestMethod]
    public void Only_existing_folders_are_touched_and_nothing_means_no_script()
    {
        Assert.IsNull(Script(ExistingFolderMetadata.Acl), "no folder exists in the image");
        Assert.IsNull(Script(ExistingFolderMetadata.Acl, "srv/projects"), "a folder without ACLs or xattrs");
        Assert.IsFalse(Script(ExistingFolderMetadata.All, "srv")!.Contains("/opt", StringComparison.Ordinal));
    }

    [TestMethod]
    public void Paths_are_quoted_for_the_shell()
    {
        var odd = Directory.CreateDirectory(Path.Combine(_root, "it's here")).FullName;
        Assert.AreEqual(0, Syscall.lsetxattr(odd, "user.x", "1"u8.ToArray()));
        StringAssert.Contains(Script(ExistingFolderMetadata.Acl, "it's here"), "'/it'\\''s here'");
    }

    [TestMethod]
    [DataRow("ACL", "acl")]
    [DataRow("", "acl")]
    [DataRow(" all ", "all")]
    public void Setting_values(string value, string expected) => Assert.AreEqual(expected, ExistingFolderMetadata.Parse(value));

    [TestMethod]
    public void Other_setting_value_is_MSI0019_naming_the_choices()
    {
        var e = Assert.ThrowsExactly<ImageBuildException>(() => ExistingFolderMetadata.Parse("owner"));
        Assert.AreEqual(MsiCodes.SettingChoiceInvalid, e.Code);
        StringAssert.Contains(e.Message, "MsExistingFolderMetadata 'owner' is not one of acl, all");
        StringAssert.Contains(e.Message, "MS_EXISTING_FOLDER_METADATA");
    }
}
