namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>Samples the peak resident memory (VmHWM) of a process and its descendants while it runs.</summary>
public sealed class PeakMemory : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sampler;
    private long _peakKiB;

    private PeakMemory(int rootPid)
    {
        _sampler = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                foreach (var pid in Tree(rootPid))
                {
                    var hwm = ReadHighWaterMarkKiB(pid);
                    if (hwm > Interlocked.Read(ref _peakKiB)) Interlocked.Exchange(ref _peakKiB, hwm);
                }
                try { await Task.Delay(100, _stop.Token); } catch (OperationCanceledException) { }
            }
        });
    }

    public long PeakBytes => Interlocked.Read(ref _peakKiB) * 1024;

    public static PeakMemory Watch(int pid) => new(pid);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _sampler;
    }

    private static IEnumerable<int> Tree(int pid)
    {
        yield return pid;
        string[] tasks;
        try { tasks = Directory.GetDirectories($"/proc/{pid}/task"); } catch (IOException) { yield break; } catch (UnauthorizedAccessException) { yield break; }
        foreach (var task in tasks)
        {
            string children;
            try { children = File.ReadAllText(Path.Combine(task, "children")); } catch (IOException) { continue; }
            foreach (var child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                foreach (var descendant in Tree(int.Parse(child))) yield return descendant;
            }
        }
    }

    private static long ReadHighWaterMarkKiB(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return long.Parse(line[6..].Trim().Split(' ')[0]);
                }
            }
        }
        catch (IOException)
        {
        }
        return 0;
    }
}
