using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Reads an image layer tar keeping every SCHILY.xattr pax record byte for byte. Why not System.Formats.Tar's
/// TarReader: it decodes pax record values as UTF-8 strings (<c>PaxTarEntry.ExtendedAttributes</c>), so a binary value
/// (security.capability, an ACL's 0xFFFFFFFF ids) comes back with U+FFFD in place of its non-UTF-8 bytes and cannot be
/// written again as it was (<c>TopLayerRewriteTests</c> shows it). Handles ustar, pax ('x'; 'g' ignored) and GNU long
/// names ('L', 'K'), octal and base-256 numbers; the content of the current entry is <see cref="Content"/>.
/// </summary>
public sealed class LayerTarReader(Stream input)
{
    private readonly Stream _input = input;
    private const int Block = 512;
    private const string XattrPrefix = "SCHILY.xattr.";
    private long _position;
    private long _remaining;
    private long _padding;

    public sealed record Entry(string Name, byte Type, int Mode, long Uid, long Gid, long Size, DateTimeOffset ModificationTime, string? LinkName,
        IReadOnlyDictionary<string, byte[]> Xattrs, long DevMajor, long DevMinor)
    {
        /// <summary>Where the content starts in the tar.</summary>
        public long DataOffset { get; init; }

        public bool IsFile => Type is (byte)'0' or 0 or (byte)'7';

        /// <summary>The image path: no leading '/' or './', no trailing '/'.</summary>
        public string Path => Normalize(Name);

        public bool IsWhiteout => System.IO.Path.GetFileName(Path).StartsWith(".wh.", StringComparison.Ordinal);
    }

    public static string Normalize(string name)
    {
        var path = name.TrimEnd('/');
        while (path.StartsWith("./", StringComparison.Ordinal))
        {
            path = path[2..];
        }
        return path.TrimStart('/');
    }

    /// <summary>The content of the entry <see cref="NextAsync"/> returned last (readable once, until the next call).</summary>
    public Stream Content => new BoundedStream(this);

    /// <summary>The content of an entry read earlier, for a seekable input (readable once, until the next call).</summary>
    public Stream ContentOf(Entry entry)
    {
        _input.Position = _position = entry.DataOffset;
        _remaining = entry.IsFile ? entry.Size : 0;
        _padding = Pad(_remaining);
        return Content;
    }

    /// <summary>The next entry (its content unread), or null at the end of the archive.</summary>
    public async Task<Entry?> NextAsync(CancellationToken cancellationToken)
    {
        var records = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string? longName = null, longLink = null;
        var header = new byte[Block];
        while (true)
        {
            await SkipAsync(_remaining + _padding, cancellationToken).ConfigureAwait(false);
            _remaining = _padding = 0;
            if (!await ReadBlockAsync(header, cancellationToken).ConfigureAwait(false) || header.All(b => b == 0))
            {
                return null;
            }
            VerifyChecksum(header);
            var type = header[156];
            var size = Number(header, 124, 12);
            if (type is (byte)'x' or (byte)'g' or (byte)'L' or (byte)'K')
            {
                var data = new byte[size];
                await ReadExactlyAsync(data, cancellationToken).ConfigureAwait(false);
                await SkipAsync(Pad(size), cancellationToken).ConfigureAwait(false);
                switch (type)
                {
                    case (byte)'x':
                        foreach (var (key, value) in Records(data))
                        {
                            records[key] = value;
                        }
                        break;
                    case (byte)'L':
                        longName = CString(data, 0, data.Length);
                        break;
                    case (byte)'K':
                        longLink = CString(data, 0, data.Length);
                        break;
                }
                continue;
            }
            if (records.Keys.Any(k => k.StartsWith("GNU.sparse", StringComparison.Ordinal)) || type == (byte)'S')
            {
                throw new InvalidDataException("The layer holds a sparse file entry, which this rewrite does not support.");
            }
            var name = CString(header, 0, 100);
            if (Encoding.ASCII.GetString(header, 257, 5) == "ustar" && header[345] != 0)
            {
                name = CString(header, 345, 155) + "/" + name;
            }
            name = Text(records, "path") ?? longName ?? name;
            var link = Text(records, "linkpath") ?? longLink ?? CString(header, 157, 100);
            if (Text(records, "size") is { } paxSize)
            {
                size = long.Parse(paxSize, CultureInfo.InvariantCulture);
            }
            var xattrs = records.Where(r => r.Key.StartsWith(XattrPrefix, StringComparison.Ordinal))
                .ToDictionary(r => r.Key[XattrPrefix.Length..], r => r.Value, StringComparer.Ordinal);
            var entry = new Entry(name, type, (int)Number(header, 100, 8),
                Text(records, "uid") is { } uid ? long.Parse(uid, CultureInfo.InvariantCulture) : Number(header, 108, 8),
                Text(records, "gid") is { } gid ? long.Parse(gid, CultureInfo.InvariantCulture) : Number(header, 116, 8),
                size, Text(records, "mtime") is { } mtime ? ParseTime(mtime) : DateTimeOffset.FromUnixTimeSeconds(Number(header, 136, 12)),
                type is (byte)'1' or (byte)'2' ? link : null, xattrs, Number(header, 329, 8), Number(header, 337, 8))
            {
                DataOffset = _position,
            };
            // Links, folders and devices carry no content whatever their size field says.
            _remaining = entry.IsFile ? size : 0;
            _padding = Pad(_remaining);
            return entry;
        }
    }

    /// <summary>Reads what follows the end-of-archive blocks (so a hash of the input covers it all).</summary>
    public async Task DrainAsync(CancellationToken cancellationToken)
    {
        await SkipAsync(_remaining + _padding, cancellationToken).ConfigureAwait(false);
        _remaining = _padding = 0;
        await _input.CopyToAsync(Stream.Null, cancellationToken).ConfigureAwait(false);
    }

    private static long Pad(long size) => (Block - (size % Block)) % Block;

    private static IEnumerable<(string Key, byte[] Value)> Records(byte[] data)
    {
        var offset = 0;
        while (offset < data.Length)
        {
            var space = Array.IndexOf(data, (byte)' ', offset);
            if (space < 0 || !int.TryParse(Encoding.ASCII.GetString(data, offset, space - offset), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
                || length <= 0 || offset + length > data.Length || data[offset + length - 1] != (byte)'\n')
            {
                throw new InvalidDataException("A pax extended header of the layer is malformed.");
            }
            var equals = Array.IndexOf(data, (byte)'=', space, offset + length - space);
            if (equals < 0)
            {
                throw new InvalidDataException("A pax record of the layer has no '='.");
            }
            yield return (Encoding.UTF8.GetString(data, space + 1, equals - space - 1), data[(equals + 1)..(offset + length - 1)]);
            offset += length;
        }
    }

    private static string? Text(Dictionary<string, byte[]> records, string key) =>
        records.TryGetValue(key, out var value) ? Encoding.UTF8.GetString(value) : null;

    private static DateTimeOffset ParseTime(string text)
    {
        var value = decimal.Parse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
        return DateTimeOffset.UnixEpoch.AddTicks((long)decimal.Round(value * TimeSpan.TicksPerSecond));
    }

    private static string CString(byte[] bytes, int offset, int length)
    {
        var end = Array.IndexOf(bytes, (byte)0, offset, length);
        return Encoding.UTF8.GetString(bytes, offset, (end < 0 ? offset + length : end) - offset);
    }

    private static long Number(byte[] header, int offset, int length)
    {
        if ((header[offset] & 0x80) != 0)
        {
            // Base-256 (GNU): big-endian two's complement after the marker bit.
            long value = header[offset] & 0x7F;
            for (var i = 1; i < length; i++)
            {
                value = (value << 8) | header[offset + i];
            }
            return value;
        }
        var text = Encoding.ASCII.GetString(header, offset, length).Trim(' ', '\0');
        return text.Length == 0 ? 0 : Convert.ToInt64(text, 8);
    }

    private static void VerifyChecksum(byte[] header)
    {
        var sum = 0L;
        for (var i = 0; i < Block; i++)
        {
            sum += i is >= 148 and < 156 ? ' ' : header[i];
        }
        if (sum != Number(header, 148, 8))
        {
            throw new InvalidDataException("A header of the layer has a wrong checksum: not a tar, or a corrupt one.");
        }
    }

    private async Task<bool> ReadBlockAsync(byte[] block, CancellationToken cancellationToken)
    {
        var read = await _input.ReadAtLeastAsync(block, Block, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        _position += read;
        return read == Block;
    }

    private async Task ReadExactlyAsync(byte[] data, CancellationToken cancellationToken)
    {
        await _input.ReadExactlyAsync(data, cancellationToken).ConfigureAwait(false);
        _position += data.Length;
    }

    private async Task SkipAsync(long count, CancellationToken cancellationToken)
    {
        if (count == 0)
        {
            return;
        }
        if (_input.CanSeek)
        {
            _input.Seek(count, SeekOrigin.Current);
            _position += count;
            return;
        }
        var buffer = new byte[(int)Math.Min(count, 1 << 16)];
        while (count > 0)
        {
            var read = await _input.ReadAsync(buffer.AsMemory(0, (int)Math.Min(count, buffer.Length)), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException("The layer tar ends inside an entry.");
            }
            count -= read;
            _position += read;
        }
    }

    /// <summary>The current entry's content, read from the archive as it goes.</summary>
    private sealed class BoundedStream(LayerTarReader reader) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (reader._remaining == 0 || buffer.Length == 0)
            {
                return 0;
            }
            var read = await reader._input.ReadAsync(buffer[..(int)Math.Min(buffer.Length, reader._remaining)], cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new EndOfStreamException("The layer tar ends inside an entry's content.");
            }
            reader._remaining -= read;
            reader._position += read;
            return read;
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>A pass-through stream (read or write) that hashes what goes through it with SHA-256.</summary>
public sealed class Sha256Stream(Stream inner) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public long Count { get; private set; }

    /// <summary>"sha256:" and the hex digest of what went through.</summary>
    public string Digest() => "sha256:" + Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override bool CanRead => inner.CanRead;
    public override bool CanSeek => false;
    public override bool CanWrite => inner.CanWrite;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => Count; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Hashed(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Hashed(buffer.Span[..read]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count)
    {
        Hashed(buffer.AsSpan(offset, count));
        inner.Write(buffer, offset, count);
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Hashed(buffer.Span);
        return inner.WriteAsync(buffer, cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }
        base.Dispose(disposing);
    }

    private int Hashed(ReadOnlySpan<byte> data)
    {
        _hash.AppendData(data);
        Count += data.Length;
        return data.Length;
    }
}
