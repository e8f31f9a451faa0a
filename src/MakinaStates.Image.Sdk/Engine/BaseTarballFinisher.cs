using System.Diagnostics;
using System.Runtime.InteropServices;
using MakinaStates.Image.Sdk.Concurrency;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The base tarball written from stage0.sh's raw tar by a process of its own (MakinaStates.Image.Sdk.BaseFinisher.dll,
/// beside the tasks), which outlives the build: the build imports the raw tar and goes on, and never waits for xz.
/// <para>
/// This file is compiled into the tasks and into the finisher alike: it is the protocol between the two, file work only
/// (the finisher never reaches the engine).
/// </para>
/// <list type="bullet">
/// <item>The finisher holds <c>locks/base-finish-&lt;tarball&gt;.lock</c> from before the build lets go of the base lock
/// until the tarball is renamed into place and the raw tar is deleted. flock locks belong to an open file description and
/// .NET opens files close-on-exec, so the build's base lock cannot be inherited: the finisher takes its own and says
/// <c>ready</c> on its stdout, and only then does the build release the base lock.</item>
/// <item>Every build that needs the base takes the base lock, then waits for the finish lock (<see cref="WaitForRunningAsync"/>):
/// it finds a complete tarball or none.</item>
/// <item>The tarball is written under the finisher's temporary name (<see cref="AtomicFile"/>): a killed finisher leaves
/// no partial tarball under the final name. Its raw tar is deleted only after the rename, so the next build finishes
/// the tarball from it (<see cref="OrphanRaws"/>) instead of running debootstrap again; the temporaries of a dead
/// finisher go (<see cref="RemoveStaleTemporaries"/>).</item>
/// <item>The finisher cannot tag the import with the tarball's hash. It writes <c>&lt;tarball&gt;.origin</c> before the
/// rename instead: the tarball's SHA-256 and the build-private tag of the import of its raw tar. The next build that
/// looks the import up by the tarball's hash and does not find it tags that import (<see cref="BaseImageImport"/>), and
/// the candidate's key alias of a cold build is resolved through it (<c>InputsKey</c>).</item>
/// </list>
/// </summary>
public static class BaseTarballFinisher
{
    public const string AssemblyFileName = "MakinaStates.Image.Sdk.BaseFinisher.dll";

    /// <summary>What the finisher says on its stdout once it holds the finish lock.</summary>
    public const string ReadyLine = "ready";

    private const string RawPrefix = ".stage0.raw.";
    private const string RawSuffix = ".tar";

    /// <summary>The lock the finisher holds while it writes <paramref name="tarballPath"/> (a name in MsDataDir/locks/).</summary>
    public static string FinishLockName(string tarballPath) => "base-finish-" + Path.GetFileName(tarballPath);

    /// <summary>Where the finisher logs (the build that started it is over by then).</summary>
    public static string LogPath(string dataDirectory, string tarballPath) => Path.Combine(dataDirectory, "locks", FinishLockName(tarballPath) + ".log");

    /// <summary>Where stage0.sh leaves the raw tar of a build (beside the tarball, so the rename stays on one file system).</summary>
    public static string RawPath(string tarballPath, string buildId) => Path.Combine(Path.GetDirectoryName(tarballPath)!, $"{RawPrefix}{buildId}{RawSuffix}");

    /// <summary>The build-private tag the import of a raw tar has until it is tagged with its tarball's hash.</summary>
    public static string ImportTag(string rawPath)
    {
        var name = Path.GetFileName(rawPath);
        return "build-" + name[RawPrefix.Length..^RawSuffix.Length];
    }

    /// <summary>
    /// Raw tars beside the tarball that no running build or finisher owns any more (call it holding the base lock after
    /// <see cref="WaitForRunningAsync"/>), newest first. stage0.sh renames a raw tar into place when complete.
    /// </summary>
    public static IReadOnlyList<string> OrphanRaws(string tarballPath) =>
        Directory.Exists(Path.GetDirectoryName(tarballPath))
            ? Directory.GetFiles(Path.GetDirectoryName(tarballPath)!, RawPrefix + "*" + RawSuffix)
                .Where(path => !Path.GetFileName(path).Contains(".partial.", StringComparison.Ordinal))
                .OrderByDescending(File.GetLastWriteTimeUtc).ToList()
            : [];

    /// <summary>The partial tarballs of a finisher (or an in-process write) that died: nobody writes them any more.</summary>
    public static void RemoveStaleTemporaries(string tarballPath)
    {
        var directory = Path.GetDirectoryName(tarballPath)!;
        if (!Directory.Exists(directory))
        {
            return;
        }
        var prefix = Path.GetFileName(tarballPath) + ".";
        foreach (var path in Directory.GetFiles(directory, prefix + "*"))
        {
            if (AtomicFile.IsTemporary(Path.GetFileName(path)) && Path.GetFileName(path)[prefix.Length..].Count(c => c == '.') == 1)
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>
    /// Holding the base lock: waits until no finisher writes this tarball (saying so when one does). After this the
    /// tarball is complete or absent, and no raw tar beside it is in use.
    /// </summary>
    public static async Task WaitForRunningAsync(string dataDirectory, string tarballPath, Action<string> log, CancellationToken cancellationToken)
    {
        if (!IsRunning(dataDirectory, tarballPath))
        {
            return;
        }
        log($"waiting for the base tarball {tarballPath} to be finished (the finisher an earlier build started writes it; log: {LogPath(dataDirectory, tarballPath)}).");
        using var held = await DataDirectoryLock.AcquireAsync(dataDirectory, FinishLockName(tarballPath), $"the base tarball {tarballPath} being finished", log, cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>Whether a finisher holds the finish lock of this tarball now.</summary>
    public static bool IsRunning(string dataDirectory, string tarballPath) => DataDirectoryLock.IsHeld(dataDirectory, FinishLockName(tarballPath));

    /// <summary>The sidecar naming what the tarball was written from.</summary>
    public static string OriginPath(string tarballPath) => tarballPath + ".origin";

    /// <summary>The tarball's whole SHA-256 and the tag of the import of the raw tar it was written from, if recorded.</summary>
    public static (string Sha256, string ImportTag)? ReadOrigin(string tarballPath)
    {
        try
        {
            var fields = File.ReadAllText(OriginPath(tarballPath)).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return fields.Length == 2 ? (fields[0], fields[1]) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The finisher's work: holding the finish lock, writes the tarball from the raw tar (temporary name, origin, rename),
    /// then deletes the raw tar. Returns the tarball's SHA-256.
    /// </summary>
    public static async Task<string> WriteAsync(string rawPath, string tarballPath, CancellationToken cancellationToken)
    {
        var sha256 = await BaseTarball.WriteFromRawAsync(rawPath, tarballPath,
            beforeRename: hash => AtomicFile.WriteAllText(OriginPath(tarballPath), $"{hash} {ImportTag(rawPath)}\n"), cancellationToken).ConfigureAwait(false);
        File.Delete(rawPath);
        return sha256;
    }

    /// <summary>
    /// Starts the finisher on <paramref name="rawPath"/> with the build's dotnet host and waits until it holds the finish
    /// lock (its <see cref="ReadyLine"/>): from then on it owns the raw tar, and the build may release the base lock.
    /// </summary>
    /// <returns>The finisher's process id; null when it cannot run here (the build then writes the tarball itself).</returns>
    public static async Task<int?> TryStartAsync(string rawPath, string tarballPath, string dataDirectory, Action<string> log, CancellationToken cancellationToken)
    {
        // The dotnet CLI sets DOTNET_HOST_PATH for the builds it runs; another host (Visual Studio's MSBuild) may not.
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        var finisher = Path.Combine(Path.GetDirectoryName(typeof(BaseTarballFinisher).Assembly.Location) ?? "", AssemblyFileName);
        if (string.IsNullOrEmpty(host) || !File.Exists(host) || !File.Exists(finisher))
        {
            log($"no dotnet host to run the base tarball's finisher with (DOTNET_HOST_PATH): this build writes {tarballPath} itself.");
            return null;
        }
        var start = new ProcessStartInfo(host, [finisher, rawPath, tarballPath, dataDirectory])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // No diagnostics socket in the build's TMPDIR: the finisher outlives the build, and may be killed.
        start.Environment["DOTNET_EnableDiagnostics"] = "0";
        using var process = Process.Start(start) ?? throw new IOException($"{host} could not be started");
        string? said;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            try
            {
                said = await process.StandardOutput.ReadLineAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                said = null;
            }
        }
        if (said == ReadyLine)
        {
            log($"the base tarball {tarballPath} is written by process {process.Id} beside the build; it outlives the build (log: {LogPath(dataDirectory, tarballPath)}).");
            return process.Id;
        }
        // Not ready (or the build was cancelled meanwhile): a finisher killed before or after it took the lock leaves the
        // raw tar, which the build writes itself now or the next build finishes.
        try
        {
            process.Kill();
        }
        catch (InvalidOperationException)
        {
        }
        cancellationToken.ThrowIfCancellationRequested();
        var errors = (await process.StandardError.ReadToEndAsync(CancellationToken.None).ConfigureAwait(false)).Trim();
        log($"the base tarball's finisher did not start ({(said ?? errors) switch { { Length: > 0 } why => why, _ => "no answer" }}): this build writes {tarballPath} itself.");
        return null;
    }

    /// <summary>
    /// The finisher's own session: Ctrl+C in the build's terminal goes to the build's process group, and it must not
    /// stop xz half-way (a finished tarball spares the next build its debootstrap).
    /// </summary>
    public static void LeaveTerminalSession()
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            _ = setsid();
        }
    }

    [DllImport("libc")]
    private static extern int setsid();

    /// <summary>Points stdin to /dev/null and stdout/stderr to <paramref name="logPath"/>: the build's pipes close when it exits.</summary>
    public static void DetachStandardStreams(string logPath)
    {
        using var log = new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
        using var nothing = new FileStream("/dev/null", FileMode.Open, FileAccess.Read);
        _ = dup2((int)nothing.SafeFileHandle.DangerousGetHandle(), 0);
        _ = dup2((int)log.SafeFileHandle.DangerousGetHandle(), 1);
        _ = dup2((int)log.SafeFileHandle.DangerousGetHandle(), 2);
        // Console writes to its own duplicate of the stdout it was first used with (the build's pipe): it is pointed to
        // the new fd 1.
        var writer = new StreamWriter(new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(1, ownsHandle: false), FileAccess.Write, 1)) { AutoFlush = true };
        Console.SetOut(writer);
        Console.SetError(writer);
    }

    [DllImport("libc")]
    private static extern int dup2(int oldFd, int newFd);
}
