using MakinaStates.Image.Sdk.Concurrency;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// The base tarball's finisher, seen from a test: it outlives the build, so a test waits for it (or stops it) before
/// its folder goes; and a gated xz keeps it running for as long as a test needs it to.
/// </summary>
public static class BaseFinishers
{
    /// <summary>Whether a finisher writes <paramref name="tarball"/> now.</summary>
    public static bool IsRunning(string dataDirectory, string tarball) => BaseTarballFinisher.IsRunning(dataDirectory, tarball);

    /// <summary>The process id the finisher wrote into its lock file.</summary>
    public static int Pid(string dataDirectory, string tarball) =>
        int.Parse(ReadLockFile(DataDirectoryLock.PathOf(dataDirectory, BaseTarballFinisher.FinishLockName(tarball))), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>cat, not File.ReadAllText: .NET takes a shared flock to read, which the holder's exclusive one refuses.</summary>
    private static string ReadLockFile(string path) => HostProcess.Run("cat", path).Trim();

    /// <summary>Waits until no finisher writes <paramref name="tarball"/>; fails after <paramref name="timeout"/>.</summary>
    public static async Task WaitAsync(string dataDirectory, string tarball, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (IsRunning(dataDirectory, tarball))
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"the finisher of {tarball} still runs after {timeout.TotalSeconds:0} s:\n{Log(dataDirectory, tarball)}");
            }
            await Task.Delay(200);
        }
    }

    public static string Log(string dataDirectory, string tarball) =>
        File.Exists(BaseTarballFinisher.LogPath(dataDirectory, tarball)) ? File.ReadAllText(BaseTarballFinisher.LogPath(dataDirectory, tarball)) : "(no log)";

    /// <summary>
    /// Cleanup: every finisher under <paramref name="root"/> (its data dirs' locks) gets <paramref name="grace"/> to end,
    /// then is killed with its process group (it is a session leader: its xz goes too).
    /// </summary>
    public static void StopAll(string root, TimeSpan grace)
    {
        if (!Directory.Exists(root))
        {
            return;
        }
        foreach (var lockFile in Directory.EnumerateFiles(root, "base-finish-*.lock", SearchOption.AllDirectories))
        {
            var dataDirectory = Path.GetDirectoryName(Path.GetDirectoryName(lockFile)!)!;
            var name = Path.GetFileNameWithoutExtension(lockFile);
            var deadline = DateTime.UtcNow + grace;
            while (DataDirectoryLock.IsHeld(dataDirectory, name) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(200);
            }
            if (DataDirectoryLock.IsHeld(dataDirectory, name) && int.TryParse(ReadLockFile(lockFile), out var pid))
            {
                Mono.Unix.Native.Syscall.kill(-pid, Mono.Unix.Native.Signum.SIGKILL);
                Mono.Unix.Native.Syscall.kill(pid, Mono.Unix.Native.Signum.SIGKILL);
                while (DataDirectoryLock.IsHeld(dataDirectory, name) && DateTime.UtcNow < deadline + TimeSpan.FromSeconds(10))
                {
                    Thread.Sleep(100);
                }
            }
        }
    }

    /// <summary>
    /// An xz first on PATH that holds the finisher's compression (xz -T0 -0, as BaseTarball runs it) until
    /// <see cref="GatedXz.Open"/>; every other use of xz goes straight through.
    /// </summary>
    public static GatedXz GateXz(string folder)
    {
        var bin = Directory.CreateDirectory(Path.Combine(folder, "gated-xz")).FullName;
        var gate = Path.Combine(bin, "open");
        var realXz = new[] { "/usr/bin/xz", "/bin/xz" }.First(File.Exists);
        var script = Path.Combine(bin, "xz");
        // Bounded: a test that never opens the gate must not leave a process waiting for good.
        File.WriteAllText(script, $"""
            #!/bin/sh
            if [ "$1" = "-T0" ] && [ "$2" = "-0" ]; then
              n=0
              while [ ! -e '{gate}' ] && [ $n -lt 1500 ]; do sleep 0.2; n=$((n + 1)); done
            fi
            exec {realXz} "$@"

            """);
        File.SetUnixFileMode(script, (UnixFileMode)0x1ED);
        return new GatedXz(gate, new Dictionary<string, string?> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" });
    }

    public sealed record GatedXz(string Gate, IDictionary<string, string?> Environment)
    {
        public void Open() => File.WriteAllText(Gate, "");
    }
}
