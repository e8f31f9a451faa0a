using System.Buffers.Binary;
using System.Formats.Tar;
using System.Globalization;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The POSIX ACLs and user xattrs a container's paths carry, as save-acls.sh wrote them (`getfacl -R -s -p -n` into
/// /acls.txt, `getfattr -R -h -d -m '^user\.' -e hex --absolute-names` into /xattrs.txt), turned into the xattr values
/// a layer tar carries (SCHILY.xattr records): <c>system.posix_acl_access</c> / <c>system.posix_acl_default</c> in the
/// kernel's binary form, user xattrs as their raw bytes. Keys are image paths without the leading '/'.
/// </summary>
public static class ContainerXattrs
{
    public const string AclsFile = "/acls.txt";
    public const string XattrsFile = "/xattrs.txt";
    public const string Access = "system.posix_acl_access";
    public const string Default = "system.posix_acl_default";
    private const uint AclVersion = 2;
    private const uint UndefinedId = uint.MaxValue;

    /// <summary>Reads both lists from the container (running or stopped); a list save-acls.sh did not write counts as empty.</summary>
    public static async Task<Dictionary<string, IReadOnlyDictionary<string, byte[]>>> ReadAsync(DockerEngine engine, string containerId,
        CancellationToken cancellationToken)
    {
        var acls = await ReadTextAsync(engine, containerId, AclsFile, cancellationToken).ConfigureAwait(false);
        var xattrs = await ReadTextAsync(engine, containerId, XattrsFile, cancellationToken).ConfigureAwait(false);
        return Parse(acls ?? "", xattrs ?? "");
    }

    /// <summary>Both lists in one map: a path listed in both gets the ACLs and the user xattrs.</summary>
    public static Dictionary<string, IReadOnlyDictionary<string, byte[]>> Parse(string aclsText, string xattrsText)
    {
        var merged = new Dictionary<string, Dictionary<string, byte[]>>(StringComparer.Ordinal);
        foreach (var (path, values) in ParseAcls(aclsText).Concat(ParseXattrs(xattrsText)))
        {
            if (!merged.TryGetValue(path, out var target))
            {
                merged[path] = target = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            }
            foreach (var (name, value) in values)
            {
                target[name] = value;
            }
        }
        return merged.ToDictionary(p => p.Key, p => (IReadOnlyDictionary<string, byte[]>)p.Value, StringComparer.Ordinal);
    }

    /// <summary>
    /// getfacl's text: per path a "# file:" line, then "user::rwx", "user:1000:r-x", "group::", "group:50:rwx", "mask::",
    /// "other::" and the same prefixed with "default:" (numeric ids: getfacl -n). An access ACL of the three base entries
    /// only is the mode itself (the kernel stores no xattr for it), so it gives no value.
    /// </summary>
    public static Dictionary<string, IReadOnlyDictionary<string, byte[]>> ParseAcls(string text)
    {
        var result = new Dictionary<string, IReadOnlyDictionary<string, byte[]>>(StringComparer.Ordinal);
        foreach (var (path, lines) in Sections(text, AclsFile))
        {
            var access = new List<PosixAcl.Entry>();
            var defaults = new List<PosixAcl.Entry>();
            foreach (var (number, line) in lines)
            {
                var entry = line;
                // "user:1000:rwx\t#effective:r-x": the comment says what the mask leaves.
                var comment = entry.IndexOf('#', StringComparison.Ordinal);
                if (comment >= 0)
                {
                    entry = entry[..comment];
                }
                entry = entry.Trim();
                var target = access;
                if (entry.StartsWith("default:", StringComparison.Ordinal))
                {
                    target = defaults;
                    entry = entry["default:".Length..];
                }
                target.Add(ParseAclEntry(entry, number, line));
            }
            var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            var accessValue = access.Count > 0 ? EncodeAcl(access, path) : null;
            if (accessValue is not null && access.Any(e => e.Tag is PosixAcl.Tag.User or PosixAcl.Tag.Group or PosixAcl.Tag.Mask))
            {
                values[Access] = accessValue;
            }
            if (defaults.Count > 0)
            {
                values[Default] = EncodeAcl(defaults, path);
            }
            if (values.Count > 0)
            {
                result[path] = values;
            }
        }
        return result;
    }

    /// <summary>getfattr's dump: per path a "# file:" line, then name=value (0x hex, 0s base64 or "quoted text").</summary>
    public static Dictionary<string, IReadOnlyDictionary<string, byte[]>> ParseXattrs(string text)
    {
        var result = new Dictionary<string, IReadOnlyDictionary<string, byte[]>>(StringComparer.Ordinal);
        foreach (var (path, lines) in Sections(text, XattrsFile))
        {
            var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var (number, line) in lines)
            {
                var equals = line.IndexOf('=', StringComparison.Ordinal);
                var name = Encoding.UTF8.GetString(Unescape(equals < 0 ? line : line[..equals]));
                values[name] = equals < 0 ? [] : DecodeValue(line[(equals + 1)..], number, line);
            }
            if (values.Count > 0)
            {
                result[path] = values;
            }
        }
        return result;
    }

    /// <summary>The kernel's form: version 2, then (tag u16, permissions u16, id u32) little-endian, sorted by tag then id.</summary>
    public static byte[] EncodeAcl(IEnumerable<PosixAcl.Entry> entries, string path)
    {
        var sorted = entries.OrderBy(e => (ushort)e.Tag).ThenBy(e => e.Id).ToList();
        var single = new[] { PosixAcl.Tag.UserObj, PosixAcl.Tag.GroupObj, PosixAcl.Tag.Other };
        if (single.Any(t => sorted.Count(e => e.Tag == t) != 1) || sorted.Count(e => e.Tag == PosixAcl.Tag.Mask) > 1
            || (sorted.Any(e => e.IsNamed) && sorted.All(e => e.Tag != PosixAcl.Tag.Mask))
            || sorted.Where(e => e.IsNamed).GroupBy(e => (e.Tag, e.Id)).Any(g => g.Count() > 1))
        {
            throw Invalid(AclsFile, 0, $"# file: {path}", "an ACL needs one user::, group:: and other:: entry, named entries once each, and mask:: with named entries");
        }
        var bytes = new byte[4 + (8 * sorted.Count)];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, AclVersion);
        for (var i = 0; i < sorted.Count; i++)
        {
            var span = bytes.AsSpan(4 + (8 * i));
            BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)sorted[i].Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(span[2..], (ushort)sorted[i].Permissions);
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], sorted[i].IsNamed ? sorted[i].Id : UndefinedId);
        }
        return bytes;
    }

    private static PosixAcl.Entry ParseAclEntry(string entry, int number, string line)
    {
        var parts = entry.Split(':');
        if (parts.Length != 3)
        {
            throw Invalid(AclsFile, number, line, "not tag:qualifier:permissions");
        }
        var named = parts[1].Length > 0;
        var tag = (parts[0], named) switch
        {
            ("user" or "u", false) => PosixAcl.Tag.UserObj,
            ("user" or "u", true) => PosixAcl.Tag.User,
            ("group" or "g", false) => PosixAcl.Tag.GroupObj,
            ("group" or "g", true) => PosixAcl.Tag.Group,
            ("mask" or "m", false) => PosixAcl.Tag.Mask,
            ("other" or "o", false) => PosixAcl.Tag.Other,
            ("mask" or "m" or "other" or "o", true) => throw Invalid(AclsFile, number, line, $"{parts[0]} takes no qualifier"),
            _ => throw Invalid(AclsFile, number, line, $"unknown tag '{parts[0]}'"),
        };
        uint id = UndefinedId;
        if (named && (!uint.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out id) || id == UndefinedId))
        {
            throw Invalid(AclsFile, number, line, $"'{parts[1]}' is not a numeric id (save-acls.sh runs getfacl -n)");
        }
        var rwx = parts[2];
        if (rwx.Length != 3 || rwx[0] is not ('r' or '-') || rwx[1] is not ('w' or '-') || rwx[2] is not ('x' or '-'))
        {
            throw Invalid(AclsFile, number, line, $"'{rwx}' is not rwx permissions");
        }
        var permissions = (rwx[0] == 'r' ? 4 : 0) | (rwx[1] == 'w' ? 2 : 0) | (rwx[2] == 'x' ? 1 : 0);
        return new PosixAcl.Entry(tag, permissions, id);
    }

    private static byte[] DecodeValue(string value, int number, string line)
    {
        try
        {
            if (value.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            {
                return Convert.FromHexString(value[2..]);
            }
            if (value.StartsWith("0s", StringComparison.OrdinalIgnoreCase))
            {
                return Convert.FromBase64String(value[2..]);
            }
        }
        catch (FormatException e)
        {
            throw Invalid(XattrsFile, number, line, e.Message);
        }
        if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
        {
            return Unescape(value[1..^1]);
        }
        throw Invalid(XattrsFile, number, line, "not a 0x (hex), 0s (base64) or quoted value");
    }

    /// <summary>The "# file:" sections of a getfacl/getfattr dump with their numbered lines ("# owner:" and the like left out).</summary>
    private static IEnumerable<(string Path, List<(int Number, string Line)> Lines)> Sections(string text, string source)
    {
        string? path = null;
        var lines = new List<(int, string)>();
        var number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var line = raw.TrimEnd('\r');
            if (line.StartsWith("# file: ", StringComparison.Ordinal))
            {
                if (path is not null)
                {
                    yield return (path, lines);
                }
                path = Encoding.UTF8.GetString(Unescape(line["# file: ".Length..])).TrimStart('/');
                lines = [];
            }
            else if (line.Length > 0 && !line.StartsWith('#'))
            {
                if (path is null)
                {
                    throw Invalid(source, number, line, "an entry before any '# file:' line");
                }
                lines.Add((number, line));
            }
        }
        if (path is not null)
        {
            yield return (path, lines);
        }
    }

    /// <summary>
    /// getfacl and getfattr write some bytes of a name as \ooo (three octal digits): acl 2.3 (Debian 12) newlines and
    /// carriage returns, a backslash as \\; older versions spaces and every non-printable byte too.
    /// </summary>
    internal static byte[] Unescape(string text)
    {
        var bytes = new List<byte>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && IsOctal(text, i + 1))
            {
                bytes.Add((byte)Convert.ToInt32(text.Substring(i + 1, 3), 8));
                i += 3;
            }
            else if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] == '\\')
            {
                bytes.Add((byte)'\\');
                i++;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(text[i].ToString()));
            }
        }
        return [.. bytes];
    }

    private static bool IsOctal(string text, int start) =>
        start + 3 <= text.Length && text.Substring(start, 3).All(c => c is >= '0' and <= '7');

    private static ImageBuildException Invalid(string source, int number, string line, string reason) =>
        new(MsiCodes.XattrListInvalid, MsiMessages.Format("XattrListInvalid", source, number, reason, line));

    private static async Task<string?> ReadTextAsync(DockerEngine engine, string containerId, string path, CancellationToken cancellationToken)
    {
        Stream stream;
        try
        {
            stream = (await engine.Client.Containers.GetArchiveFromContainerAsync(containerId,
                new ContainerPathStatParameters { Path = path }, statOnly: false, cancellationToken).ConfigureAwait(false)).Stream!;
        }
        catch (DockerApiException e) when (DockerEngine.IsGone(e))
        {
            // Docker.DotNet maps every 404 of this call to "container not found", a missing path included.
            return null;
        }
        // The lists are small: read whole, which also avoids the tar reader's small reads on Docker.DotNet's chunked
        // stream (and a BufferedStream over it, which says it cannot read once the response ended).
        using var copy = new MemoryStream();
        await using (stream.ConfigureAwait(false))
        {
            await stream.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
        }
        copy.Position = 0;
        await using var reader = new TarReader(copy);
        var entry = await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false);
        if (entry?.DataStream is null)
        {
            return entry is null ? null : "";
        }
        using var text = new StreamReader(entry.DataStream, Encoding.UTF8);
        return await text.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
    }
}
