using System.Buffers;
using System.Globalization;
using System.Text;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// Writes a POSIX pax tar stream, one PAX extended header per entry.
/// Why not System.Formats.Tar: its PAX attributes are strings written as UTF-8, so the kernel's binary
/// xattr values (system.posix_acl_access, security.capability) would be corrupted; the engine's archive
/// API applies SCHILY.xattr.* records byte for byte, which is how ACLs reach the container.
/// </summary>
public sealed class PaxTarWriter(Stream output)
{
    private const int Block = 512;
    private static readonly byte[] Zeros = new byte[Block];
    private const long MaxUstarSize = 8589934591; // 11 octal digits
    private const long MaxUstarId = 2097151; // 7 octal digits

    public enum EntryType : byte
    {
        File = (byte)'0',
        HardLink = (byte)'1',
        Symlink = (byte)'2',
        Directory = (byte)'5',
        Fifo = (byte)'6',
    }

    public sealed record Entry(string Name, EntryType Type, int Mode, long Uid, long Gid, DateTimeOffset ModificationTime)
    {
        public long Size { get; init; }
        public string? LinkName { get; init; }
        public IReadOnlyDictionary<string, byte[]> Xattrs { get; init; } = new Dictionary<string, byte[]>();
    }

    /// <summary>The bytes <see cref="WriteEntryAsync"/> writes for this entry: its pax header, its header, its padded content.</summary>
    public static long LengthOf(Entry entry) => Block + Padded(PaxRecords(entry).Length) + Block + Padded(entry.Type == EntryType.File ? entry.Size : 0);

    private static long Padded(long length) => (length + Block - 1) / Block * Block;

    public async Task WriteEntryAsync(Entry entry, Stream? content, CancellationToken cancellationToken)
    {
        var pax = PaxRecords(entry);
        await WriteHeaderAsync(ShortName("PaxHeaders/" + entry.Name), (byte)'x', 0x1A4, 0, 0, pax.Length, entry.ModificationTime, null, cancellationToken).ConfigureAwait(false);
        await output.WriteAsync(pax, cancellationToken).ConfigureAwait(false);
        await PadAsync(pax.Length, cancellationToken).ConfigureAwait(false);
        await WriteBodyAsync(entry, content, cancellationToken).ConfigureAwait(false);
    }

    private static byte[] PaxRecords(Entry entry)
    {
        var records = new List<(string Key, byte[] Value)>
        {
            ("path", Encoding.UTF8.GetBytes(entry.Name)),
            ("uid", Ascii(entry.Uid)),
            ("gid", Ascii(entry.Gid)),
            ("mtime", Encoding.ASCII.GetBytes(FormatTime(entry.ModificationTime))),
        };
        if (entry.LinkName is not null)
        {
            records.Add(("linkpath", Encoding.UTF8.GetBytes(entry.LinkName)));
        }
        if (entry.Size >= MaxUstarSize)
        {
            records.Add(("size", Ascii(entry.Size)));
        }
        foreach (var (name, value) in entry.Xattrs.OrderBy(x => x.Key, StringComparer.Ordinal))
        {
            records.Add(("SCHILY.xattr." + name, value));
        }

        return EncodeRecords(records);
    }

    private async Task WriteBodyAsync(Entry entry, Stream? content, CancellationToken cancellationToken)
    {
        var size = entry.Type == EntryType.File ? entry.Size : 0;
        await WriteHeaderAsync(ShortName(entry.Name), (byte)entry.Type, entry.Mode, entry.Uid, entry.Gid, size, entry.ModificationTime,
            entry.LinkName is null ? null : ShortName(entry.LinkName), cancellationToken).ConfigureAwait(false);
        if (size > 0)
        {
            if (content is null)
            {
                throw new ArgumentException($"{entry.Name}: a file entry of {size} bytes needs content", nameof(content));
            }
            await CopyExactlyAsync(content, size, entry.Name, cancellationToken).ConfigureAwait(false);
            await PadAsync(size, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Two zero blocks end the archive.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        await output.WriteAsync(Zeros, cancellationToken).ConfigureAwait(false);
        await output.WriteAsync(Zeros, cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    internal static byte[] EncodeRecords(IEnumerable<(string Key, byte[] Value)> records)
    {
        using var buffer = new MemoryStream();
        foreach (var (key, value) in records)
        {
            // "<length> <key>=<value>\n" where length counts its own digits too.
            var rest = Encoding.UTF8.GetByteCount(key) + value.Length + 3;
            var length = rest + rest.ToString(CultureInfo.InvariantCulture).Length;
            if (length.ToString(CultureInfo.InvariantCulture).Length != (length - rest))
            {
                length++;
            }
            buffer.Write(Encoding.ASCII.GetBytes(length.ToString(CultureInfo.InvariantCulture) + " "));
            buffer.Write(Encoding.UTF8.GetBytes(key + "="));
            buffer.Write(value);
            buffer.WriteByte((byte)'\n');
        }
        return buffer.ToArray();
    }

    private async Task WriteHeaderAsync(string name, byte type, int mode, long uid, long gid, long size, DateTimeOffset mtime, string? linkName, CancellationToken cancellationToken)
    {
        var header = new byte[Block];
        WriteString(header, 0, 100, name);
        WriteOctal(header, 100, 8, mode & 0xFFF);
        WriteOctal(header, 108, 8, uid <= MaxUstarId ? uid : 0);
        WriteOctal(header, 116, 8, gid <= MaxUstarId ? gid : 0);
        WriteOctal(header, 124, 12, size < MaxUstarSize ? size : 0);
        WriteOctal(header, 136, 12, Math.Max(0, mtime.ToUnixTimeSeconds()));
        header[156] = type;
        if (linkName is not null)
        {
            WriteString(header, 157, 100, linkName);
        }
        WriteString(header, 257, 6, "ustar");
        header[263] = (byte)'0';
        header[264] = (byte)'0';
        for (var i = 148; i < 156; i++)
        {
            header[i] = (byte)' ';
        }
        var checksum = 0;
        foreach (var b in header)
        {
            checksum += b;
        }
        WriteOctal(header, 148, 7, checksum);
        await output.WriteAsync(header, cancellationToken).ConfigureAwait(false);
    }

    private async Task CopyExactlyAsync(Stream content, long size, string name, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            var remaining = size;
            while (remaining > 0)
            {
                var read = await content.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException($"{name} shrank while it was being injected ({size - remaining} of {size} bytes read)");
                }
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                remaining -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task PadAsync(long written, CancellationToken cancellationToken)
    {
        var pad = (int)((Block - (written % Block)) % Block);
        if (pad > 0)
        {
            await output.WriteAsync(Zeros.AsMemory(0, pad), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The ustar name fields hold 100 bytes; the pax "path"/"linkpath" records carry the real names.</summary>
    private static string ShortName(string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name);
        return bytes.Length <= 99 ? name : Encoding.ASCII.GetString(bytes.Where(b => b < 0x80).Take(99).ToArray());
    }

    private static string FormatTime(DateTimeOffset time)
    {
        // A signed decimal: before 1970, -1.5 s is "-1.5000000" (the sign applies to the whole number).
        var ticks = time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        var sign = ticks < 0 ? "-" : "";
        var magnitude = Math.Abs(ticks);
        var seconds = magnitude / TimeSpan.TicksPerSecond;
        var fraction = magnitude % TimeSpan.TicksPerSecond;
        return fraction == 0 ? sign + seconds.ToString(CultureInfo.InvariantCulture)
            : $"{sign}{seconds.ToString(CultureInfo.InvariantCulture)}.{fraction.ToString("D7", CultureInfo.InvariantCulture)}";
    }

    private static byte[] Ascii(long value) => Encoding.ASCII.GetBytes(value.ToString(CultureInfo.InvariantCulture));

    private static void WriteString(byte[] header, int offset, int length, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Array.Copy(bytes, 0, header, offset, Math.Min(bytes.Length, length));
    }

    private static void WriteOctal(byte[] header, int offset, int length, long value)
    {
        var text = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        WriteString(header, offset, length - 1, text);
        header[offset + length - 1] = 0;
    }
}
