using System.Text;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// The injected tree's POSIX ACLs as `getfacl` text, for `setfacl --restore` inside the container. For engines whose
/// archive API drops ACL xattrs on the way in (Podman's keeps user.* and security.* only); Docker applies them from
/// the tar stream itself.
/// </summary>
public static class AclRestoreList
{
    /// <summary>The restore text, paths relative to '/'; empty when nothing in the tree carries an ACL.</summary>
    /// <param name="existingFolders">Folders the image already had: <see cref="ExistingFolderMetadata"/> gives them their ACLs.</param>
    public static string Build(InjectedTree tree, IReadOnlySet<string>? existingFolders = null)
    {
        var text = new StringBuilder();
        foreach (var node in tree.Nodes.Where(n => (n.Stat.st_mode & Mono.Unix.Native.FilePermissions.S_IFMT) != Mono.Unix.Native.FilePermissions.S_IFLNK
                                                   && existingFolders?.Contains(n.ImagePath) != true))
        {
            var (access, defaults) = PosixAcl.Of(node.Xattrs, node.HostPath);
            if (access is null && defaults is null)
            {
                continue;
            }
            text.Append("# file: ").Append(Quote(node.ImagePath.Length == 0 ? "." : node.ImagePath)).Append('\n');
            foreach (var entry in access?.Entries ?? []) text.Append(entry.GetfaclText).Append('\n');
            foreach (var entry in defaults?.Entries ?? []) text.Append("default:").Append(entry.GetfaclText).Append('\n');
            text.Append('\n');
        }
        return text.ToString();
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
