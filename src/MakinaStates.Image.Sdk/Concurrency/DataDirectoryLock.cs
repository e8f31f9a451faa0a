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
        var directory = Path.Combine(dataDirectory, "locks");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '.' ? c : '_')) + ".lock");
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

    public void Dispose() => _file.Dispose();
}
