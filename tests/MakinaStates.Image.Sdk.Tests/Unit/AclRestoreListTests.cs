using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The ACL list that Podman builds restore with setfacl: getfacl's own text, which setfacl takes back.</summary>
[TestClass]
public sealed class AclRestoreListTests
{
    [TestMethod]
    public void Acls_of_the_tree_read_as_getfacl_writes_them_and_setfacl_restores_them()
    {
        var source = Directory.CreateTempSubdirectory("acl-list-").FullName;
        var copy = Directory.CreateTempSubdirectory("acl-copy-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(source, "srv", "shared dir"));
            File.WriteAllText(Path.Combine(source, "srv", "acl-file"), "x");
            File.WriteAllText(Path.Combine(source, "srv", "plain"), "x");
            HostProcess.Run("setfacl", "-m", "u:4242:rw", Path.Combine(source, "srv", "acl-file"));
            HostProcess.Run("setfacl", "-m", "g:4243:rwx", "-d", "-m", "g:4243:rx", Path.Combine(source, "srv", "shared dir"));

            var text = AclRestoreList.Build(InjectedTree.Collect([new InjectedTree.Source(source, "/")]));

            StringAssert.Contains(text, "# file: srv/acl-file\nuser::rw-\nuser:4242:rw-\ngroup::r--\nmask::rw-\nother::r--\n");
            StringAssert.Contains(text, "# file: srv/shared\\040dir\n");
            StringAssert.Contains(text, "default:group:4243:r-x\n");
            Assert.IsFalse(text.Contains("plain", StringComparison.Ordinal), "a file without an ACL is not listed");

            // setfacl takes it back: the same files elsewhere get the same ACLs.
            Directory.CreateDirectory(Path.Combine(copy, "srv", "shared dir"));
            File.WriteAllText(Path.Combine(copy, "srv", "acl-file"), "x");
            var list = Path.Combine(copy, "acls.txt");
            File.WriteAllText(list, text);
            HostProcess.RunIn(copy, "setfacl", $"--restore={list}");
            foreach (var name in new[] { "srv/acl-file", "srv/shared dir" })
            {
                Assert.AreEqual(HostProcess.RunIn(source, "getfacl", "-n", "-c", "-p", name), HostProcess.RunIn(copy, "getfacl", "-n", "-c", "-p", name), name);
            }
        }
        finally
        {
            Directory.Delete(source, recursive: true);
            Directory.Delete(copy, recursive: true);
        }
    }
}
