namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// A fresh base whose import the build already uses while its tarball is still being compressed beside it. It holds
/// the data dir's base lock until the tarball is complete (a parallel build then finds the tarball and its import),
/// and gives the import the tag of the tarball's hash, so the next build does not import it again. Stage3 finishes
/// it; if the build ends before (a failure), MSBuild disposes it, which finishes it too, or stops it on Ctrl+C.
/// </summary>
public sealed class BaseTarballInProgress : IDisposable
{
    private readonly CancellationTokenSource _abandon = new();
    private readonly IDisposable _baseLock;
    private readonly Task<string> _writing;
    private readonly Func<CancellationToken, Task<DockerEngine>> _connect;
    private readonly string _rawPath;
    private readonly string _os;
    private readonly string _release;
    private Task<string>? _finishing;

    private BaseTarballInProgress(string rawPath, string tarballPath, string os, string release, IDisposable baseLock, Func<CancellationToken, Task<DockerEngine>> connect)
    {
        _rawPath = rawPath;
        TarballPath = tarballPath;
        _os = os;
        _release = release;
        _baseLock = baseLock;
        _connect = connect;
        _writing = Task.Run(async () => BaseTarball.Tag(await BaseTarball.WriteFromRawAsync(rawPath, tarballPath, beforeRename: null, _abandon.Token).ConfigureAwait(false)));
    }

    public string TarballPath { get; }

    /// <summary>The import of the raw tar (set once it is imported).</summary>
    public string ImageId { get; set; } = "";

    /// <summary>The build-private tag of the import until the tarball's hash is known.</summary>
    public required string TemporaryTag { get; init; }

    /// <summary>Starts writing <paramref name="tarballPath"/> from the raw tar; takes over the base lock.</summary>
    public static BaseTarballInProgress Start(string rawPath, string tarballPath, string os, string release, string temporaryTag,
        IDisposable baseLock, Func<CancellationToken, Task<DockerEngine>> connect) =>
        new(rawPath, tarballPath, os, release, baseLock, connect) { TemporaryTag = temporaryTag };

    /// <summary>Waits for the tarball, tags the import with its hash, releases the lock. Returns the import's reference.</summary>
    public Task<string> FinishAsync(DockerEngine engine, Action<string> log, CancellationToken cancellationToken)
    {
        lock (_abandon)
        {
            return _finishing ??= FinishOnceAsync(engine, log, cancellationToken);
        }
    }

    private async Task<string> FinishOnceAsync(DockerEngine engine, Action<string> log, CancellationToken cancellationToken)
    {
        try
        {
            if (!_writing.IsCompleted)
            {
                var size = () => new FileInfo(Concurrency.AtomicFile.TemporaryPath(TarballPath)) is { Exists: true } f ? f.Length : 0;
                log($"waiting for the base tarball {TarballPath} to be written.");
                using var progress = TransferProgress.Every(elapsed => $"writing the base tarball: {TransferProgress.Megabytes(size())} in {elapsed.TotalSeconds:0} s", log);
                await _writing.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            string hash;
            try
            {
                hash = await _writing.ConfigureAwait(false);
            }
            catch (Exception) when (ImageId.Length > 0)
            {
                // No tarball, so no tag a later build would look for: the build-private tag goes (the image stays while
                // this build's stage1 image builds on it).
                await engine.UntagAsync($"{BaseImageImport.Repository(_os, _release)}:{TemporaryTag}").ConfigureAwait(false);
                throw;
            }
            var reference = ImageId.Length == 0 ? "" : await BaseImageImport.TagAsync(engine, ImageId, TarballPath, hash, _os, _release, TemporaryTag, cancellationToken).ConfigureAwait(false);
            log($"wrote the base tarball {TarballPath} ({TransferProgress.Megabytes(new FileInfo(TarballPath).Length)}){(reference.Length > 0 ? $"; its import is {reference}" : "")}.");
            return reference;
        }
        finally
        {
            if (_writing.IsCompleted)
            {
                Release();
            }
        }
    }

    /// <summary>Ctrl+C or SIGTERM: the compression stops, its partial file goes; the next build makes the base again.</summary>
    public void Abandon() => _abandon.Cancel();

    private void Release()
    {
        File.Delete(_rawPath);
        _baseLock.Dispose();
    }

    /// <summary>The build ended before Stage3 finished this: the tarball is still completed (unless abandoned) and tagged.</summary>
    public void Dispose()
    {
        try
        {
            if (_finishing is not null)
            {
                return;
            }
            using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(bound.Token, _abandon.Token);
            using var engine = _connect(linked.Token).GetAwaiter().GetResult();
            FinishAsync(engine, _ => { }, linked.Token).GetAwaiter().GetResult();
            EndTunnelOf(engine);
        }
        catch (Exception)
        {
            // The build is over and nothing can be reported: a base not kept is made again by the next build.
        }
        finally
        {
            _abandon.Cancel();
            try
            {
                _writing.Wait(TimeSpan.FromSeconds(10));
            }
            catch (AggregateException)
            {
            }
            Release();
            if (ImageId.Length > 0 && _finishing is not { IsCompletedSuccessfully: true })
            {
                UntagQuietly();
            }
        }
    }

    /// <summary>
    /// This runs when the build is over (MSBuild disposes it with the build's other objects, in no set order): an ssh://
    /// engine's tunnel it opened again must not outlive the build.
    /// </summary>
    private static void EndTunnelOf(DockerEngine engine)
    {
        if (engine.Endpoint.Ssh is not null && OperatingSystem.IsLinux())
        {
            SshTunnel.CloseShared();
        }
    }

    /// <summary>Stopped before its tarball was complete: the build-private tag of the import goes (best effort).</summary>
    private void UntagQuietly()
    {
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            using var engine = _connect(bound.Token).GetAwaiter().GetResult();
            engine.UntagAsync($"{BaseImageImport.Repository(_os, _release)}:{TemporaryTag}").GetAwaiter().GetResult();
            EndTunnelOf(engine);
        }
        catch (Exception)
        {
        }
    }
}
