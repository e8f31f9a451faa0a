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
    /// <param name="sent">Files whose content changed after the tree was collected, by host path: their size and
    /// content hash as the archive sent them (<see cref="InjectedTreeArchive"/>).</param>
    public static string Compute(IEnumerable<InjectedTree.Node> nodes, ContentHashCache contents, IReadOnlyDictionary<string, SentContent>? sent = null)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var node in nodes)
        {
            var stat = node.Stat;
            var type = stat.st_mode & FilePermissions.S_IFMT;
            var line = new StringBuilder()
                .Append(node.ImagePath).Append('\0')
                .Append((uint)stat.st_mode).Append(' ').Append(stat.st_uid).Append(' ').Append(stat.st_gid).Append('\0');
            if (type == FilePermissions.S_IFREG)
            {
                var content = sent is not null && sent.TryGetValue(node.HostPath, out var changed) ? changed
                    : new SentContent(stat.st_size, contents.HashOf(node.HostPath, stat));
                line.Append(content.Size).Append(' ').Append(content.Hash);
            }
            else if (type == FilePermissions.S_IFLNK)
            {
                line.Append(node.LinkTarget);
            }
            foreach (var (name, value) in node.Xattrs.OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                line.Append('\0').Append(name).Append('=').Append(Convert.ToHexString(value));
            }
            hash.AppendData(Encoding.UTF8.GetBytes(line.Append('\n').ToString()));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}

/// <summary>A file's content as it was sent: its size and SHA-256.</summary>
public sealed record SentContent(long Size, string Hash);
