namespace MakinaStates.Image.Sdk.Concurrency;

/// <summary>
/// A cross-process lock: a file in MsDataDir/locks/ held open exclusively (an flock, released by the kernel when the
/// holder dies, so a crash never leaves a stale lock). Builds that need the same resource wait their turn.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    public static async Task<DataDirectoryLock> AcquireAsync(string dataDirectory, string name, string what, Action<string> log, CancellationToken cancellationToken)
    {
        var path = PathOf(dataDirectory, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var waitingSince = DateTime.UtcNow;
        var lastSaid = DateTime.MinValue;
        while (true)
        {
            try
            {
                // FileShare.None is an exclusive flock on Unix.
                var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                if (lastSaid != DateTime.MinValue)
                {
                    log($"got the lock for {what} after {(DateTime.UtcNow - waitingSince).TotalSeconds:0} s.");
                }
                return new DataDirectoryLock(file);
            }
            catch (IOException)
            {
                if (DateTime.UtcNow - lastSaid > TimeSpan.FromSeconds(10))
                {
                    log($"another build holds the lock for {what} ({path}); waiting.");
                    lastSaid = DateTime.UtcNow;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Takes the lock only if it is free now (null when another process holds it), and writes this process's id into
    /// the file: whoever waits for it can name (or, in tests, kill) the holder.
    /// </summary>
    public static DataDirectoryLock? TryAcquire(string dataDirectory, string name)
    {
        var path = PathOf(dataDirectory, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            var file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            file.SetLength(0);
            file.Write(System.Text.Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            file.Flush();
            return new DataDirectoryLock(file);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether another process holds the lock now (a probe: it takes the lock for an instant when it is free).</summary>
    public static bool IsHeld(string dataDirectory, string name)
    {
        var path = PathOf(dataDirectory, name);
        if (!File.Exists(path))
        {
            return false;
        }
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>The lock file of <paramref name="name"/> in MsDataDir/locks/.</summary>
    public static string PathOf(string dataDirectory, string name) =>
        Path.Combine(dataDirectory, "locks", string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_')) + ".lock");

    public void Dispose() => _file.Dispose();
}
