using System.Globalization;
using System.Text;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// Writes a POSIX pax tar stream, one PAX extended header per entry.
/// Why not System.Formats.Tar: its PAX attributes are strings written as UTF-8, so the kernel's binary
/// xattr values (system.posix_acl_access, security.capability) would be corrupted; the engine's archive
/// API applies SCHILY.xattr.* records byte for byte, which is how ACLs reach the container.
/// </summary>
/// <remarks>
/// Everything goes through one buffer of <see cref="BufferSize"/> bytes, written to the output only when full (and by
/// <see cref="FinishAsync"/>): a tree of small files would otherwise make several small writes per entry, each a flush
/// of the upload's pipe and a chunk of the HTTP body, which the engine reads and hands to its extracting process one by
/// one. Content is read straight into the buffer: no second copy for large files either.
/// </remarks>
public sealed class PaxTarWriter(Stream output)
{
    /// <summary>
    /// The size of the writes to the output (the last one excepted): the size of the large files' reads before the
    /// buffer; writes of 1 MiB gained nothing measurable (a 20,000-file tree is 160 writes of this size).
    /// </summary>
    public const int BufferSize = 256 * 1024;

    private const int Block = 512;
    private static readonly byte[] Zeros = new byte[Block];
    private const long MaxUstarSize = 8589934591; // 11 octal digits
    private const long MaxUstarId = 2097151; // 7 octal digits

    private readonly byte[] _buffer = new byte[BufferSize];
    private int _used;

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
        await WriteHeadersAsync(entry, cancellationToken).ConfigureAwait(false);
        var size = BodySize(entry);
        if (size > 0)
        {
            if (content is null)
            {
                throw new ArgumentException($"{entry.Name}: a file entry of {size} bytes needs content", nameof(content));
            }
            await CopyExactlyAsync(size, entry.Name, (memory, ct) => content.ReadAsync(memory, ct), null, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A file entry whose content is read from <paramref name="file"/> from its start; a small file's with a plain read:
    /// the caller produces the archive on its own task, and such a read is cheaper done than handed to the thread pool.
    /// </summary>
    /// <param name="hash">Fed the content as it is written (exactly <see cref="Entry.Size"/> bytes).</param>
    public async Task WriteEntryAsync(Entry entry, Microsoft.Win32.SafeHandles.SafeFileHandle file, System.Security.Cryptography.IncrementalHash? hash,
        CancellationToken cancellationToken)
    {
        await WriteHeadersAsync(entry, cancellationToken).ConfigureAwait(false);
        var offset = 0L;
        var size = BodySize(entry);
        await CopyExactlyAsync(size, entry.Name, async (memory, ct) =>
        {
            // A file larger than the buffer is read off this task, as it was before the buffer (a large file's upload
            // was not measured faster otherwise; a small file's read is cheaper done than handed over).
            var read = size > BufferSize ? await RandomAccess.ReadAsync(file, memory, offset, ct).ConfigureAwait(false)
                : RandomAccess.Read(file, memory.Span, offset);
            offset += read;
            return read;
        }, hash, cancellationToken).ConfigureAwait(false);
    }

    private static long BodySize(Entry entry) => entry.Type == EntryType.File ? entry.Size : 0;

    /// <summary>The pax header (its own header and its records), then the entry's ustar header.</summary>
    private async Task WriteHeadersAsync(Entry entry, CancellationToken cancellationToken)
    {
        var pax = PaxRecords(entry);
        await WriteHeaderAsync(ShortName("PaxHeaders/" + entry.Name), (byte)'x', 0x1A4, 0, 0, pax.Length, entry.ModificationTime, null, cancellationToken).ConfigureAwait(false);
        await WriteBufferedAsync(pax, cancellationToken).ConfigureAwait(false);
        await PadAsync(pax.Length, cancellationToken).ConfigureAwait(false);
        await WriteHeaderAsync(ShortName(entry.Name), (byte)entry.Type, entry.Mode, entry.Uid, entry.Gid, BodySize(entry), entry.ModificationTime,
            entry.LinkName is null ? null : ShortName(entry.LinkName), cancellationToken).ConfigureAwait(false);
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
        if (entry.Xattrs.Count > 0)
        {
            foreach (var (name, value) in entry.Xattrs.OrderBy(x => x.Key, StringComparer.Ordinal))
            {
                records.Add(("SCHILY.xattr." + name, value));
            }
        }

        return EncodeRecords(records);
    }

    /// <summary>Two zero blocks end the archive; what the buffer holds is written.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        await WriteBufferedAsync(Zeros, cancellationToken).ConfigureAwait(false);
        await WriteBufferedAsync(Zeros, cancellationToken).ConfigureAwait(false);
        await WriteOutAsync(cancellationToken).ConfigureAwait(false);
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
        await ReserveAsync(Block, cancellationToken).ConfigureAwait(false);
        var header = _buffer.AsSpan(_used, Block);
        header.Clear();
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
        header.Slice(148, 8).Fill((byte)' ');
        var checksum = 0;
        foreach (var b in header)
        {
            checksum += b;
        }
        WriteOctal(header, 148, 7, checksum);
        _used += Block;
    }

    /// <summary>Content of <paramref name="size"/> bytes, read straight into the buffer, then its padding.</summary>
    private async Task CopyExactlyAsync(long size, string name, Func<Memory<byte>, CancellationToken, ValueTask<int>> read,
        System.Security.Cryptography.IncrementalHash? hash, CancellationToken cancellationToken)
    {
        if (size > _buffer.Length)
        {
            // A large file's content is read whole buffers at a time from its start, each written as read (the
            // headers before it go first): the file's reads stay aligned, as they were before the buffer.
            await WriteOutAsync(cancellationToken).ConfigureAwait(false);
        }
        var remaining = size;
        while (remaining > 0)
        {
            if (_used == _buffer.Length)
            {
                await WriteOutAsync(cancellationToken).ConfigureAwait(false);
            }
            var space = _buffer.AsMemory(_used, (int)Math.Min(_buffer.Length - _used, remaining));
            var count = await read(space, cancellationToken).ConfigureAwait(false);
            if (count == 0)
            {
                throw new IOException($"{name} shrank while it was being injected ({size - remaining} of {size} bytes read)");
            }
            hash?.AppendData(_buffer, _used, count);
            _used += count;
            remaining -= count;
        }
        await PadAsync(size, cancellationToken).ConfigureAwait(false);
    }

    private async Task PadAsync(long written, CancellationToken cancellationToken)
    {
        var pad = (int)((Block - (written % Block)) % Block);
        if (pad > 0)
        {
            await WriteBufferedAsync(Zeros.AsMemory(0, pad), cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task WriteBufferedAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (bytes.Length > 0)
        {
            await ReserveAsync(1, cancellationToken).ConfigureAwait(false);
            var count = Math.Min(bytes.Length, _buffer.Length - _used);
            bytes.Span[..count].CopyTo(_buffer.AsSpan(_used));
            _used += count;
            bytes = bytes[count..];
        }
    }

    /// <summary>Room for <paramref name="count"/> bytes (at most a block) in the buffer, writing it out when it lacks it.</summary>
    private ValueTask ReserveAsync(int count, CancellationToken cancellationToken) =>
        _buffer.Length - _used >= count ? ValueTask.CompletedTask : WriteOutAsync(cancellationToken);

    private async ValueTask WriteOutAsync(CancellationToken cancellationToken)
    {
        if (_used > 0)
        {
            await output.WriteAsync(_buffer.AsMemory(0, _used), cancellationToken).ConfigureAwait(false);
            _used = 0;
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

    private static void WriteString(Span<byte> header, int offset, int length, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        bytes.AsSpan(0, Math.Min(bytes.Length, length)).CopyTo(header[offset..]);
    }

    private static void WriteOctal(Span<byte> header, int offset, int length, long value)
    {
        var text = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        WriteString(header, offset, length - 1, text);
        header[offset + length - 1] = 0;
    }
}
