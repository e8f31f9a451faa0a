using MakinaStates.Image.Sdk.Concurrency;
using MakinaStates.Image.Sdk.Engine;

// MakinaStates.Image.Sdk.BaseFinisher <raw tar> <tarball> <data dir>: writes the tarball from the raw tar after the
// build that started it has gone on (BaseTarballFinisher describes the protocol). Exit codes: 0 written, 1 failed,
// 2 usage, 3 another finisher holds the lock (the build then writes the tarball itself).
if (args.Length != 3)
{
    Console.Error.WriteLine("usage: MakinaStates.Image.Sdk.BaseFinisher <raw tar> <tarball> <data dir>");
    return 2;
}
var (raw, tarball, dataDirectory) = (args[0], args[1], args[2]);
BaseTarballFinisher.LeaveTerminalSession();
// The build holds the base lock and waited for this lock to be free: it is taken at once, or something is wrong.
using var finishLock = DataDirectoryLock.TryAcquire(dataDirectory, BaseTarballFinisher.FinishLockName(tarball));
if (finishLock is null)
{
    Console.Out.WriteLine($"the lock {DataDirectoryLock.PathOf(dataDirectory, BaseTarballFinisher.FinishLockName(tarball))} is held by another process");
    return 3;
}
// The build lets go of the base lock when it reads this line; from now on this process owns the raw tar.
Console.Out.WriteLine(BaseTarballFinisher.ReadyLine);
Console.Out.Flush();
BaseTarballFinisher.DetachStandardStreams(BaseTarballFinisher.LogPath(dataDirectory, tarball));
var started = DateTime.UtcNow;
Console.Out.WriteLine($"{started:O} finisher {Environment.ProcessId}: writing {tarball} from {raw}.");
try
{
    var sha256 = await BaseTarballFinisher.WriteAsync(raw, tarball, CancellationToken.None);
    Console.Out.WriteLine($"{DateTime.UtcNow:O} finisher {Environment.ProcessId}: wrote {tarball} (sha256 {sha256}) in {(DateTime.UtcNow - started).TotalSeconds:0.0} s.");
    return 0;
}
catch (Exception e)
{
    // The raw tar stays: the next build finishes the tarball from it, or makes the base again.
    Console.Out.WriteLine($"{DateTime.UtcNow:O} finisher {Environment.ProcessId}: could not write {tarball}: {e.Message}");
    return 1;
}
