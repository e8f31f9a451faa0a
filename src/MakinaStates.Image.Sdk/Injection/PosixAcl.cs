using System.Buffers.Binary;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// A POSIX ACL as the kernel stores it in system.posix_acl_access / system.posix_acl_default (version 2, then
/// little-endian tag, permissions and id per entry), turned into setfacl's text form (u:4242:rwx) with numeric ids.
/// </summary>
public sealed record PosixAcl(IReadOnlyList<PosixAcl.Entry> Entries)
{
    public enum Tag : ushort { UserObj = 0x01, User = 0x02, GroupObj = 0x04, Group = 0x08, Mask = 0x10, Other = 0x20 }

    public sealed record Entry(Tag Tag, int Permissions, uint Id)
    {
        public bool IsNamed => Tag is Tag.User or Tag.Group;

        public override string ToString()
        {
            var kind = Tag switch
            {
                Tag.UserObj or Tag.User => "u",
                Tag.GroupObj or Tag.Group => "g",
                Tag.Mask => "m",
                _ => "o",
            };
            var who = IsNamed ? Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : "";
            var rwx = $"{((Permissions & 4) != 0 ? 'r' : '-')}{((Permissions & 2) != 0 ? 'w' : '-')}{((Permissions & 1) != 0 ? 'x' : '-')}";
            return $"{kind}:{who}:{rwx}";
        }
    }

    private const uint Version = 2;

    /// <summary>Null when the value is not a version 2 ACL (nothing then is applied from it).</summary>
    public static PosixAcl? Parse(byte[] xattr)
    {
        if (xattr.Length < 4 || (xattr.Length - 4) % 8 != 0 || BinaryPrimitives.ReadUInt32LittleEndian(xattr) != Version)
        {
            return null;
        }
        var entries = new List<Entry>();
        for (var offset = 4; offset < xattr.Length; offset += 8)
        {
            var span = xattr.AsSpan(offset, 8);
            entries.Add(new Entry((Tag)BinaryPrimitives.ReadUInt16LittleEndian(span), BinaryPrimitives.ReadUInt16LittleEndian(span[2..]) & 7,
                BinaryPrimitives.ReadUInt32LittleEndian(span[4..])));
        }
        return new PosixAcl(entries);
    }

    /// <summary>Entries naming a user or group (what an access ACL adds to the mode bits).</summary>
    public IEnumerable<Entry> Named => Entries.Where(e => e.IsNamed);

    /// <summary>setfacl's comma-separated text, each entry prefixed (e.g. "d:" for a default ACL).</summary>
    public static string Text(IEnumerable<Entry> entries, string prefix = "") => string.Join(',', entries.Select(e => prefix + e));
}
