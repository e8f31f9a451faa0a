using System.Globalization;
using System.Security.Cryptography;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Injection;

/// <summary>
/// SHA-256 of file contents, remembered in obj/ by path with the file's device, inode, size and mtime: a file whose
/// stat is unchanged is not read again, so checking a large unchanged tree costs one lstat per file.
/// </summary>
public sealed class ContentHashCache
{
    /// <summary>Its file in obj/msimage/.</summary>
    public const string FileName = "content-hashes.tsv";

    private readonly string? _path;
    private readonly Dictionary<string, (string Stamp, string Hash)> _entries = new(StringComparer.Ordinal);
    private bool _changed;

    private ContentHashCache(string? path) => _path = path;

    /// <summary>Loads the cache file (a missing or damaged one is an empty cache); null keeps it in memory only.</summary>
    public static ContentHashCache Load(string? path)
    {
        var cache = new ContentHashCache(path);
        if (path is not null && File.Exists(path))
        {
            foreach (var line in File.ReadLines(path))
            {
                var parts = line.Split('\t');
                if (parts.Length == 3)
                {
                    cache._entries[parts[2]] = (parts[0], parts[1]);
                }
            }
        }
        return cache;
    }

    public string HashOf(string path, Stat stat)
    {
        var stamp = string.Create(CultureInfo.InvariantCulture, $"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime}.{stat.st_mtime_nsec}");
        if (_entries.TryGetValue(path, out var known) && known.Stamp == stamp)
        {
            return known.Hash;
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 16, FileOptions.SequentialScan);
        var hash = Convert.ToHexStringLower(SHA256.HashData(stream));
        _entries[path] = (stamp, hash);
        _changed = true;
        return hash;
    }

    /// <summary>Writes the cache back when something was hashed (never half: another build may be reading it).</summary>
    public void Save()
    {
        if (_path is null || !_changed)
        {
            return;
        }
        Concurrency.AtomicFile.WriteAllLines(_path, _entries.Select(e => $"{e.Value.Stamp}\t{e.Value.Hash}\t{e.Key}"));
        _changed = false;
    }
}
