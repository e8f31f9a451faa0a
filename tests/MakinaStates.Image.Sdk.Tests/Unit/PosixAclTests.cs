using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The one decoder of the kernel's ACL xattrs, for setfacl -m (short) and setfacl --restore (getfacl's form).</summary>
[TestClass]
public sealed class PosixAclTests
{
    /// <summary>Version 2, then (tag, permissions, id) little-endian entries.</summary>
    private static byte[] Xattr(params (ushort Tag, ushort Permissions, uint Id)[] entries)
    {
        var bytes = new byte[4 + 8 * entries.Length];
        bytes[0] = 2;
        for (var i = 0; i < entries.Length; i++)
        {
            var span = bytes.AsSpan(4 + 8 * i);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(span, entries[i].Tag);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(span[2..], entries[i].Permissions);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(span[4..], entries[i].Id);
        }
        return bytes;
    }

    [TestMethod]
    public void Decodes_every_kernel_tag_in_both_text_forms()
    {
        var acl = PosixAcl.Parse(Xattr((0x01, 7, 0), (0x02, 6, 4242), (0x04, 4, 0), (0x08, 5, 4243), (0x10, 7, 0), (0x20, 0, 0)))!;

        Assert.AreEqual("u::rwx,u:4242:rw-,g::r--,g:4243:r-x,m::rwx,o::---", PosixAcl.Text(acl.Entries));
        CollectionAssert.AreEqual(new[] { "user::rwx", "user:4242:rw-", "group::r--", "group:4243:r-x", "mask::rwx", "other::---" },
            acl.Entries.Select(e => e.GetfaclText).ToArray());
        Assert.AreEqual("u:4242:rw-,g:4243:r-x", PosixAcl.Text(acl.Named));
    }

    [TestMethod]
    public void An_unknown_tag_is_an_error_naming_the_file_not_other()
    {
        var e = Assert.ThrowsExactly<InvalidDataException>(() => PosixAcl.Parse(Xattr((0x01, 7, 0), (0x40, 7, 0)), "/src/srv"));
        Assert.AreEqual("/src/srv: unknown ACL entry tag 0x40", e.Message);
        Assert.ThrowsExactly<InvalidDataException>(() => new PosixAcl.Entry((PosixAcl.Tag)0x40, 7, 0).ToString(), "nor as text");
    }

    [TestMethod]
    public void A_file_without_acls_has_none()
    {
        var (access, defaults) = PosixAcl.Of(new Dictionary<string, byte[]> { ["user.note"] = [1] }, "/src/a");
        Assert.IsNull(access);
        Assert.IsNull(defaults);
        Assert.AreEqual("d:g:4243:r-x", PosixAcl.Text(PosixAcl.Of(new Dictionary<string, byte[]> { [PosixAcl.DefaultXattr] = Xattr((0x08, 5, 4243)) }, "/src/b").Default!.Entries, "d:"));
    }
}
