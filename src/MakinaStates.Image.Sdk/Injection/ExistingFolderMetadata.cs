using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// rsync -aA for the folders the image already has (/srv, /opt, merged-usr's /bin -> usr/bin). Their tar entries are
/// not sent (the engine would replace a link by a folder), so what the injected folder carries is applied afterwards
/// in the container by a shell script, through links (rsync's --keep-dirlinks):
/// <list type="bullet">
/// <item><c>acl</c> (default): its ACLs (the named entries of the access ACL, the default ACL) and user xattrs, when
/// it has any; the image's owner and mode stay (an injected checkout's uid 1000 and 0775 must not reach /etc).</item>
/// <item><c>all</c>: also its owner and mode, and the ACL becomes exactly its own (none if it has none).</item>
/// </list>
/// Never for '/': the roots of the injected sources are not tree nodes.
/// </summary>
public static class ExistingFolderMetadata
{
    public const string Acl = "acl";
    public const string All = "all";

    /// <summary>The setting's value checked: acl or all (MSI0019 otherwise).</summary>
    public static string Parse(string value) => value.Trim().ToLowerInvariant() switch
    {
        "" or Acl => Acl,
        All => All,
        _ => throw new ImageBuildException(MsiCodes.SettingChoiceInvalid,
            MsiMessages.Format("SettingChoiceInvalid", "MsExistingFolderMetadata", value, "acl, all", "MS_EXISTING_FOLDER_METADATA")),
    };

    /// <summary>The script to run in the container and how many folders it touches; null when there is nothing to apply.</summary>
    public static (string Script, int Folders)? Script(InjectedTree tree, IReadOnlySet<string> existingFolders, string mode)
    {
        var lines = new List<string>();
        var folders = 0;
        foreach (var node in tree.Nodes.Where(n => existingFolders.Contains(n.ImagePath) && InjectedTree.IsDirectory(n.Stat)))
        {
            var path = Quote("/" + node.ImagePath);
            var before = lines.Count;
            var xattrs = node.Xattrs;
            var (access, defaults) = PosixAcl.Of(xattrs, node.HostPath);
            var defaultText = defaults is null ? "" : PosixAcl.Text(defaults.Entries, "d:");
            if (mode == All)
            {
                // Owner, then no ACL, then the mode; the host's ACL (base entries and mask included) last: it agrees
                // with the host's mode bits, as on the host.
                lines.Add($"chown {node.Stat.st_uid}:{node.Stat.st_gid} {path}");
                lines.Add($"setfacl -b {path}");
                lines.Add($"chmod {Convert.ToString((uint)node.Stat.st_mode & 0xFFF, 8)} {path}");
                var entries = string.Join(',', new[] { access is null ? "" : PosixAcl.Text(access.Entries), defaultText }.Where(t => t.Length > 0));
                if (entries.Length > 0)
                {
                    lines.Add($"setfacl -m {Quote(entries)} {path}");
                }
            }
            else if (access?.Named.Any() == true || defaults is not null)
            {
                // The image's owner and mode give the base entries; the mask is recomputed from the named entries.
                var entries = string.Join(',', new[] { access is null ? "" : PosixAcl.Text(access.Named), defaultText }.Where(t => t.Length > 0));
                lines.Add($"setfacl -b {path}");
                lines.Add($"setfacl -m {Quote(entries)} {path}");
            }
            foreach (var (name, value) in xattrs.Where(x => x.Key.StartsWith("user.", StringComparison.Ordinal)))
            {
                lines.Add($"setfattr -n {Quote(name)} -v 0x{Convert.ToHexStringLower(value)} {path}");
            }
            folders += lines.Count > before ? 1 : 0;
        }
        return lines.Count == 0 ? null : ("set -eu\n" + string.Join('\n', lines) + "\n", folders);
    }

    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
