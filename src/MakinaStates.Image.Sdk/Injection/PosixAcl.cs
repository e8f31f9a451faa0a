using System.Buffers.Binary;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// A POSIX ACL as the kernel stores it in system.posix_acl_access / system.posix_acl_default (version 2, then
/// little-endian tag, permissions and id per entry), turned into setfacl's text (u:4242:rwx) or getfacl's
/// (user:4242:rwx) with numeric ids. The one decoder of these xattrs.
/// </summary>
public sealed record PosixAcl(IReadOnlyList<PosixAcl.Entry> Entries)
{
    public enum Tag : ushort { UserObj = 0x01, User = 0x02, GroupObj = 0x04, Group = 0x08, Mask = 0x10, Other = 0x20 }

    public sealed record Entry(Tag Tag, int Permissions, uint Id)
    {
        public bool IsNamed => Tag is Tag.User or Tag.Group;

        /// <summary>setfacl -m's short form: u:4242:rw-.</summary>
        public override string ToString() => Text(Kind[0..1]);

        /// <summary>getfacl's own form (user:4242:rw-), which setfacl --restore reads back.</summary>
        public string GetfaclText => Text(Kind);

        private string Kind => Tag switch
        {
            Tag.UserObj or Tag.User => "user",
            Tag.GroupObj or Tag.Group => "group",
            Tag.Mask => "mask",
            Tag.Other => "other",
            // Parse admits no other tag; a hand-made entry with one must not pass for "other".
            _ => throw new InvalidDataException($"unknown ACL entry tag 0x{(ushort)Tag:x}"),
        };

        private string Text(string kind)
        {
            var who = IsNamed ? Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : "";
            var rwx = $"{((Permissions & 4) != 0 ? 'r' : '-')}{((Permissions & 2) != 0 ? 'w' : '-')}{((Permissions & 1) != 0 ? 'x' : '-')}";
            return $"{kind}:{who}:{rwx}";
        }
    }

    public const string AccessXattr = "system.posix_acl_access";
    public const string DefaultXattr = "system.posix_acl_default";

    private const uint Version = 2;

    /// <summary>Null when the value is not a version 2 ACL (nothing then is applied from it).</summary>
    /// <exception cref="InvalidDataException">An entry's tag is none the kernel defines: applying the rest, or reading
    /// it as "other", would give the image an ACL the host file does not have.</exception>
    public static PosixAcl? Parse(byte[] xattr, string? file = null)
    {
        if (xattr.Length < 4 || (xattr.Length - 4) % 8 != 0 || BinaryPrimitives.ReadUInt32LittleEndian(xattr) != Version)
        {
            return null;
        }
        var entries = new List<Entry>();
        for (var offset = 4; offset < xattr.Length; offset += 8)
        {
            var span = xattr.AsSpan(offset, 8);
            var tag = BinaryPrimitives.ReadUInt16LittleEndian(span);
            if (!Enum.IsDefined((Tag)tag))
            {
                throw new InvalidDataException($"{(file is null ? "" : file + ": ")}unknown ACL entry tag 0x{tag:x}");
            }
            entries.Add(new Entry((Tag)tag, BinaryPrimitives.ReadUInt16LittleEndian(span[2..]) & 7, BinaryPrimitives.ReadUInt32LittleEndian(span[4..])));
        }
        return new PosixAcl(entries);
    }

    /// <summary>A file's access and default ACLs, from its xattrs (null where it has none).</summary>
    public static (PosixAcl? Access, PosixAcl? Default) Of(IReadOnlyDictionary<string, byte[]> xattrs, string file) =>
        (xattrs.TryGetValue(AccessXattr, out var access) ? Parse(access, file) : null,
         xattrs.TryGetValue(DefaultXattr, out var defaults) ? Parse(defaults, file) : null);

    /// <summary>Entries naming a user or group (what an access ACL adds to the mode bits).</summary>
    public IEnumerable<Entry> Named => Entries.Where(e => e.IsNamed);

    /// <summary>setfacl's comma-separated text, each entry prefixed (e.g. "d:" for a default ACL).</summary>
    public static string Text(IEnumerable<Entry> entries, string prefix = "") => string.Join(',', entries.Select(e => prefix + e));
}
