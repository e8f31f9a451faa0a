using System.Buffers.Binary;
using System.Text;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// The injected tree's POSIX ACLs as `getfacl` text, for `setfacl --restore` inside the container. For engines whose
/// archive API drops ACL xattrs on the way in (Podman's keeps user.* and security.* only); Docker applies them from
/// the tar stream itself.
/// </summary>
public static class AclRestoreList
{
    private const string Access = "system.posix_acl_access";
    private const string Default = "system.posix_acl_default";

    /// <summary>The restore text, paths relative to '/'; empty when nothing in the tree carries an ACL.</summary>
    /// <param name="existingFolders">Folders the image already had: <see cref="ExistingFolderMetadata"/> gives them their ACLs.</param>
    public static string Build(InjectedTree tree, IReadOnlySet<string>? existingFolders = null)
    {
        var text = new StringBuilder();
        foreach (var node in tree.Nodes.Where(n => (n.Stat.st_mode & Mono.Unix.Native.FilePermissions.S_IFMT) != Mono.Unix.Native.FilePermissions.S_IFLNK
                                                   && existingFolders?.Contains(n.ImagePath) != true))
        {
            var xattrs = node.Xattrs;
            if (!xattrs.ContainsKey(Access) && !xattrs.ContainsKey(Default))
            {
                continue;
            }
            text.Append("# file: ").Append(Quote(node.ImagePath.Length == 0 ? "." : node.ImagePath)).Append('\n');
            if (xattrs.TryGetValue(Access, out var access))
            {
                foreach (var entry in Entries(access)) text.Append(entry).Append('\n');
            }
            if (xattrs.TryGetValue(Default, out var defaults))
            {
                foreach (var entry in Entries(defaults)) text.Append("default:").Append(entry).Append('\n');
            }
            text.Append('\n');
        }
        return text.ToString();
    }

    /// <summary>Decodes the kernel's ACL xattr: a version (2), then (tag u16, permissions u16, id u32) entries, little-endian.</summary>
    internal static IEnumerable<string> Entries(byte[] xattr)
    {
        for (var offset = 4; offset + 8 <= xattr.Length; offset += 8)
        {
            var tag = BinaryPrimitives.ReadUInt16LittleEndian(xattr.AsSpan(offset));
            var permissions = BinaryPrimitives.ReadUInt16LittleEndian(xattr.AsSpan(offset + 2));
            var id = BinaryPrimitives.ReadUInt32LittleEndian(xattr.AsSpan(offset + 4));
            var bits = $"{((permissions & 4) != 0 ? 'r' : '-')}{((permissions & 2) != 0 ? 'w' : '-')}{((permissions & 1) != 0 ? 'x' : '-')}";
            yield return tag switch
            {
                0x01 => $"user::{bits}",
                0x02 => $"user:{id}:{bits}",
                0x04 => $"group::{bits}",
                0x08 => $"group:{id}:{bits}",
                0x10 => $"mask::{bits}",
                0x20 => $"other::{bits}",
                _ => throw new InvalidDataException($"unknown ACL entry tag {tag}"),
            };
        }
    }

    /// <summary>getfacl's quoting, which setfacl undoes: every byte outside printable ASCII, and '\', as \ooo.</summary>
    internal static string Quote(string path)
    {
        var quoted = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(path))
        {
            if (b is <= 0x20 or >= 0x7F or (byte)'\\')
            {
                quoted.Append('\\').Append(Convert.ToString(b, 8).PadLeft(3, '0'));
            }
            else
            {
                quoted.Append((char)b);
            }
        }
        return quoted.ToString();
    }
}
