using System.Text.RegularExpressions;

namespace MakinaStates.Image.Sdk.Concurrency;

/// <summary>
/// A file written under a temporary name beside it and renamed when complete. Builds run concurrently (other image
/// projects, other MSBuild nodes) and can be killed: a reader then sees the old content or the new, never half of it,
/// and an interrupted write leaves no truncated file under the real name.
/// </summary>
public static partial class AtomicFile
{
    /// <summary>The temporary name: per process, so that two builds writing the same file never write into each other's.</summary>
    public static string TemporaryPath(string path) => $"{path}.{Environment.ProcessId}.tmp";

    /// <summary>Whether a file name is one of these temporaries (listings of what was written leave them out).</summary>
    public static bool IsTemporary(string name) => TemporaryName().IsMatch(name);

    public static void WriteAllText(string path, string text) => Write(path, temporary => File.WriteAllText(temporary, text));

    public static void WriteAllBytes(string path, byte[] bytes) => Write(path, temporary => File.WriteAllBytes(temporary, bytes));

    public static void WriteAllLines(string path, IEnumerable<string> lines) => Write(path, temporary => File.WriteAllLines(temporary, lines));

    /// <summary><paramref name="write"/> writes the temporary path it is given; it is then renamed to <paramref name="path"/>.</summary>
    public static void Write(string path, Action<string> write) =>
        WriteAsync(path, temporary =>
        {
            write(temporary);
            return Task.FromResult(0);
        }).GetAwaiter().GetResult();

    /// <summary>
    /// <paramref name="write"/> writes the temporary path it is given (streamed, however long it takes) and returns
    /// what it learnt on the way (a hash); the file is then renamed to <paramref name="path"/>. Whatever fails, the
    /// temporary goes.
    /// </summary>
    public static async Task<T> WriteAsync<T>(string path, Func<string, Task<T>> write)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = TemporaryPath(path);
        try
        {
            var result = await write(temporary).ConfigureAwait(false);
            File.Move(temporary, path, overwrite: true);
            return result;
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    [GeneratedRegex(@"\.[0-9]+\.tmp$")]
    private static partial Regex TemporaryName();
}
