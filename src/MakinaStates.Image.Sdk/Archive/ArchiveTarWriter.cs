using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace MakinaStates.Image.Sdk.Archive;

/// <summary>
/// Writes the tar both archive formats are: plain ustar headers, owner 0:0 without names, files 0644 and folders 0755,
/// one modification time, each folder once before what it holds; so the same content gives the same bytes. A blob
/// (blobs/sha256/&lt;hex&gt;) streamed from an engine is named once its content has passed: its header goes out with a
/// placeholder name and is written again, with the digest, when the content is done (the output must be seekable).
/// Each blob is written once; a second copy of a streamed one is cut off again.
/// Why not <see cref="System.Formats.Tar.TarWriter"/>: it cannot write a header before the name is known, nor rewrite
/// one. Why not <see cref="Injection.PaxTarWriter"/>: its pax record per entry repeats the name (and the time), which a
/// patch would have to find in two places; these names fit ustar headers.
/// </summary>
internal sealed class ArchiveTarWriter(Stream output, DateTimeOffset entryTime)
{
    public const string BlobFolder = "blobs/sha256/";
    private const int Block = 512;
    private const long MaxUstarSize = 077777777777; // 11 octal digits: 8 GiB - 1
    private static readonly byte[] Zeros = new byte[Block * 2];
    private static readonly string Placeholder = BlobFolder + new string('0', 64);

    private readonly long _time = Math.Max(0, entryTime.ToUnixTimeSeconds());
    private readonly HashSet<string> _folders = new(StringComparer.Ordinal);
    private readonly HashSet<string> _blobs = new(StringComparer.Ordinal);

    /// <summary>Whether a name fits a ustar header (100 bytes, or a prefix of up to 155 and a rest of up to 100 split at a '/').</summary>
    public static bool Fits(string name) => Split(Encoding.UTF8.GetBytes(name)) is not null;

    public async Task WriteFolderAsync(string name, CancellationToken cancellationToken)
    {
        var folder = name.TrimEnd('/');
        if (folder.Length == 0 || _folders.Contains(folder))
        {
            return;
        }
        await WriteParentsAsync(folder, cancellationToken).ConfigureAwait(false);
        _folders.Add(folder);
        await WriteHeaderAsync(Header(folder + "/", (byte)'5', 0x1ED, 0, null), 0, cancellationToken).ConfigureAwait(false);
    }

    public async Task WriteSymlinkAsync(string name, string target, CancellationToken cancellationToken)
    {
        await WriteParentsAsync(name, cancellationToken).ConfigureAwait(false);
        await WriteHeaderAsync(Header(name, (byte)'2', 0x1FF, 0, target), 0, cancellationToken).ConfigureAwait(false);
    }

    public Task WriteFileAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken) =>
        WriteFileAsync(name, content.Length, new MemoryStream(content.ToArray(), writable: false), cancellationToken);

    /// <summary>A file of <paramref name="size"/> bytes, copied from <paramref name="content"/>.</summary>
    public async Task WriteFileAsync(string name, long size, Stream content, CancellationToken cancellationToken)
    {
        await WriteParentsAsync(name, cancellationToken).ConfigureAwait(false);
        await WriteHeaderAsync(Header(name, (byte)'0', 0x1A4, size, null), size, cancellationToken).ConfigureAwait(false);
        await CopyAsync(content, size, null, name, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A blob of content at hand; nothing is written when a blob of that digest is already in the archive.</summary>
    public async Task<string> WriteBlobAsync(ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content.Span));
        if (_blobs.Add(digest))
        {
            await WriteFileAsync(BlobName(digest), content, cancellationToken).ConfigureAwait(false);
        }
        return digest;
    }

    /// <summary>
    /// A blob of <paramref name="size"/> bytes streamed from <paramref name="content"/> and named by its sha256, known
    /// only once it passed: the header is written again then. A blob already in the archive is cut off again.
    /// </summary>
    /// <returns>Its digest, sha256:&lt;hex&gt;.</returns>
    public async Task<string> WriteBlobAsync(long size, Stream content, CancellationToken cancellationToken)
    {
        await WriteFolderAsync(BlobFolder, cancellationToken).ConfigureAwait(false);
        var start = output.Position;
        var header = Header(Placeholder, (byte)'0', 0x1A4, size, null);
        await WriteHeaderAsync(header, size, cancellationToken).ConfigureAwait(false);
        var headerPosition = output.Position - Block;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await CopyAsync(content, size, hash, "a layer", cancellationToken).ConfigureAwait(false);
        var digest = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!_blobs.Add(digest))
        {
            // Shared with an image written before (or twice in one): the copy goes.
            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            output.SetLength(start);
            output.Position = start;
            return digest;
        }
        var end = output.Position;
        SetName(header, BlobName(digest));
        output.Position = headerPosition;
        await output.WriteAsync(header, cancellationToken).ConfigureAwait(false);
        output.Position = end;
        return digest;
    }

    public static string BlobName(string digest) => BlobFolder + digest["sha256:".Length..];

    /// <summary>Two zero blocks end the archive.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        await output.WriteAsync(Zeros, cancellationToken).ConfigureAwait(false);
        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task WriteParentsAsync(string name, CancellationToken cancellationToken)
    {
        var slash = name.TrimEnd('/').LastIndexOf('/');
        if (slash > 0)
        {
            await WriteFolderAsync(name[..slash], cancellationToken).ConfigureAwait(false);
        }
    }

    private byte[] Header(string name, byte type, int mode, long size, string? linkName)
    {
        var header = new byte[Block];
        WriteOctal(header, 100, 8, mode);
        WriteOctal(header, 108, 8, 0);
        WriteOctal(header, 116, 8, 0);
        WriteOctal(header, 124, 12, size <= MaxUstarSize ? size : 0);
        WriteOctal(header, 136, 12, _time);
        header[156] = type;
        if (linkName is not null)
        {
            var link = Encoding.UTF8.GetBytes(linkName);
            if (link.Length > 100)
            {
                throw new ArgumentException($"The link target {linkName} is longer than a tar header holds.", nameof(linkName));
            }
            link.CopyTo(header, 157);
        }
        "ustar\0"u8.CopyTo(header.AsSpan(257));
        "00"u8.CopyTo(header.AsSpan(263));
        WriteOctal(header, 329, 8, 0);
        WriteOctal(header, 337, 8, 0);
        SetName(header, name);
        return header;
    }

    /// <summary>Sets the name fields and the checksum (which covers them).</summary>
    private static void SetName(byte[] header, string name)
    {
        var (prefix, last) = Split(Encoding.UTF8.GetBytes(name)) ?? throw new ArgumentException($"{name} is too long for a tar header.", nameof(name));
        header.AsSpan(0, 100).Clear();
        header.AsSpan(345, 155).Clear();
        last.CopyTo(header, 0);
        prefix.CopyTo(header, 345);
        "        "u8.CopyTo(header.AsSpan(148));
        var checksum = 0;
        foreach (var b in header)
        {
            checksum += b;
        }
        WriteOctal(header, 148, 7, checksum);
        header[155] = (byte)' ';
    }

    private static (byte[] Prefix, byte[] Last)? Split(byte[] name)
    {
        if (name.Length <= 100)
        {
            return ([], name);
        }
        // The prefix ends at a '/' (not stored) and holds up to 155 bytes; the rest up to 100.
        for (var slash = Math.Min(155, name.Length - 1); slash > 0; slash--)
        {
            if (name[slash] == '/' && name.Length - slash - 1 <= 100)
            {
                return (name[..slash], name[(slash + 1)..]);
            }
        }
        return null;
    }

    private async Task WriteHeaderAsync(byte[] header, long size, CancellationToken cancellationToken)
    {
        if (size > MaxUstarSize)
        {
            // Beyond 8 GiB the size goes in a pax record before the header (which then says 0).
            var record = Encoding.ASCII.GetBytes(PaxRecord("size", size.ToString(CultureInfo.InvariantCulture)));
            var pax = Header("PaxHeaders/size", (byte)'x', 0x1A4, record.Length, null);
            await output.WriteAsync(pax, cancellationToken).ConfigureAwait(false);
            await output.WriteAsync(record, cancellationToken).ConfigureAwait(false);
            await PadAsync(record.Length, cancellationToken).ConfigureAwait(false);
        }
        await output.WriteAsync(header, cancellationToken).ConfigureAwait(false);
    }

    private static string PaxRecord(string key, string value)
    {
        // "<length> <key>=<value>\n", the length counting its own digits.
        var rest = key.Length + value.Length + 3;
        var length = rest + rest.ToString(CultureInfo.InvariantCulture).Length;
        if (length.ToString(CultureInfo.InvariantCulture).Length + rest != length)
        {
            length++;
        }
        return $"{length} {key}={value}\n";
    }

    private async Task CopyAsync(Stream content, long size, IncrementalHash? hash, string what, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            var remaining = size;
            while (remaining > 0)
            {
                var read = await content.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new EndOfStreamException($"The engine's stream ended inside {what} ({size - remaining} of {size} bytes).");
                }
                hash?.AppendData(buffer, 0, read);
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                remaining -= read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        await PadAsync(size, cancellationToken).ConfigureAwait(false);
    }

    private Task PadAsync(long written, CancellationToken cancellationToken)
    {
        var pad = (int)((Block - (written % Block)) % Block);
        return pad == 0 ? Task.CompletedTask : output.WriteAsync(Zeros.AsMemory(0, pad), cancellationToken).AsTask();
    }

    private static void WriteOctal(byte[] header, int offset, int length, long value)
    {
        var text = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        Encoding.ASCII.GetBytes(text, 0, length - 1, header, offset);
        header[offset + length - 1] = 0;
    }
}
