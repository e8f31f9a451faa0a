using System.Security.Cryptography;
using System.Text;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// One hash for everything the injected tree puts into the image: paths, types, modes, owners, link targets, xattrs
/// (ACLs included) and file contents. Modification times are left out, so a checkout or a touch alone does not
/// make the image out of date.
/// </summary>
public static class TreeFingerprint
{
    public static string Compute(InjectedTree tree, ContentHashCache contents)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var node in tree.Nodes)
        {
            var stat = node.Stat;
            var type = stat.st_mode & FilePermissions.S_IFMT;
            var line = new StringBuilder()
                .Append(node.ImagePath).Append('\0')
                .Append((uint)stat.st_mode).Append(' ').Append(stat.st_uid).Append(' ').Append(stat.st_gid).Append('\0');
            if (type == FilePermissions.S_IFREG)
            {
                line.Append(stat.st_size).Append(' ').Append(contents.HashOf(node.HostPath, stat));
            }
            else if (type == FilePermissions.S_IFLNK)
            {
                var target = new StringBuilder(4096);
                var length = Syscall.readlink(node.HostPath, target);
                line.Append(length >= 0 ? target.ToString(0, (int)length) : "?");
            }
            foreach (var (name, value) in InjectedTreeArchive.ReadXattrs(node.HostPath).OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                line.Append('\0').Append(name).Append('=').Append(Convert.ToHexString(value));
            }
            hash.AppendData(Encoding.UTF8.GetBytes(line.Append('\n').ToString()));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
