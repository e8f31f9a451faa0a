using Docker.DotNet;
using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Build.Framework;
using Task = Microsoft.Build.Utilities.Task;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// What a build holds and must give back however it ends: the image lock, the stage container, the data volume and a
/// fresh base, registered with MSBuild so that a failure, Ctrl+C or a failing hook between stages cleans up.
/// </summary>
public abstract partial class ImageBuildTask
{
    /// <summary>
    /// Holds the per-image lock from Stage0 to the end of Stage3, so two builds of one image never interleave. It is
    /// registered with MSBuild for the build's lifetime: whatever way the build ends, MSBuild disposes it.
    /// </summary>
    protected void HoldImageLock(IDisposable imageLock) =>
        BuildEngine4.RegisterTaskObject(ImageLockKey, imageLock, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    /// <summary>Lets the next build of this image start (the build's stages are over).</summary>
    protected void ReleaseImageLock()
    {
        if (!string.IsNullOrEmpty(BuildId) && BuildEngine4.UnregisterTaskObject(ImageLockKey, RegisteredTaskObjectLifetime.Build) is IDisposable held)
        {
            held.Dispose();
        }
    }

    private string ImageLockKey => $"MakinaStates.Image.Sdk.ImageLock/{BuildId}";

    /// <summary>
    /// Between Stage2 and Stage3 no task of ours runs: if the build stops there (a failing hook, Ctrl+C), MSBuild
    /// disposes this guard at the end of the build, which removes the container.
    /// </summary>
    protected void GuardStageContainer(string containerId)
    {
        var buildId = BuildId;
        // The volume too: MSBuild disposes the guards in no set order, and a volume cannot go while its container exists.
        BuildEngine4.RegisterTaskObject(ContainerGuardKey, new EngineCleanupGuard(ResolveEndpoint(), async (engine, token) =>
        {
            await engine.RemoveContainerAsync(containerId, token).ConfigureAwait(false);
            await Engine.DataVolume.RemoveAsync(engine, buildId, token).ConfigureAwait(false);
        }), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
    }

    /// <summary>Stage3 owns the container now (and removes it itself).</summary>
    protected void ReleaseStageContainerGuard() => BuildEngine4.UnregisterTaskObject(ContainerGuardKey, RegisteredTaskObjectLifetime.Build);

    private string ContainerGuardKey => $"MakinaStates.Image.Sdk.StageContainer/{BuildId}";

    /// <summary>Runs a cleanup against the engine when MSBuild disposes it at the end of the build; never throws.</summary>
    private sealed class EngineCleanupGuard(Settings.DockerEndpoint endpoint, Func<Engine.DockerEngine, CancellationToken, System.Threading.Tasks.Task> cleanup) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                using var engine = Engine.DockerEngine.ConnectAsync(endpoint, bound.Token).GetAwaiter().GetResult();
                cleanup(engine, bound.Token).GetAwaiter().GetResult();
            }
            catch (Exception)
            {
                // The build is over; Stage0 of the next build reaps what could not be removed here.
            }
            finally
            {
                CloseSshTunnelsOf(endpoint);
            }
        }
    }

    /// <summary>
    /// ssh:// engines: the build's tunnel (one for all its engine connections) ends with the build. MSBuild disposes
    /// this at the build's end, whatever way it ends; a cleanup disposed after it, which opens the tunnel again,
    /// closes it again itself (<see cref="CloseSshTunnelsOf"/>).
    /// </summary>
    private void HoldSshTunnels()
    {
        const string key = "MakinaStates.Image.Sdk.SshTunnels";
        if (BuildEngine4.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) is null)
        {
            BuildEngine4.RegisterTaskObject(key, new SshTunnelsOfBuild(), RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        }
    }

    internal static void CloseSshTunnelsOf(Settings.DockerEndpoint endpoint)
    {
        if (endpoint.Ssh is not null && OperatingSystem.IsLinux())
        {
            Engine.SshTunnel.CloseShared();
        }
    }

    private sealed class SshTunnelsOfBuild : IDisposable
    {
        public void Dispose()
        {
            if (OperatingSystem.IsLinux())
            {
                Engine.SshTunnel.CloseShared();
            }
        }
    }

    /// <summary>
    /// However the build ends (Ctrl+C in Stage1 included, where no OnError target runs), MSBuild disposes this guard
    /// at its end, which removes the build's data volume. Removing it earlier (end of Stage3) is fine: it is idempotent.
    /// </summary>
    private void GuardDataVolume()
    {
        var key = $"MakinaStates.Image.Sdk.DataVolume/{BuildId}";
        if (BuildEngine4.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) is null)
        {
            var buildId = BuildId;
            BuildEngine4.RegisterTaskObject(key, new EngineCleanupGuard(ResolveEndpoint(), (engine, token) => Engine.DataVolume.RemoveAsync(engine, buildId, token)),
                RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
        }
    }


    private string CollectedTreeKey => $"MakinaStates.Image.Sdk.InjectedTree/{BuildId}";

    /// <summary>
    /// Stage0's injected tree, as it collected and fingerprinted it, for Stage2 to send: the tree is walked once, and
    /// the tree keyed is the tree sent.
    /// </summary>
    protected void HoldCollectedTree(Injection.InjectedTree tree) =>
        BuildEngine4.RegisterTaskObject(CollectedTreeKey, tree, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    /// <summary>The tree Stage0 collected for this build; null when this process did not run Stage0 of it.</summary>
    protected Injection.InjectedTree? TakeCollectedTree() =>
        BuildEngine4.UnregisterTaskObject(CollectedTreeKey, RegisteredTaskObjectLifetime.Build) as Injection.InjectedTree;

    private string FreshBaseKey => $"MakinaStates.Image.Sdk.FreshBase/{BuildId}";

    /// <summary>A fresh base whose tarball is still being written: Stage3 finishes it, else MSBuild at the build's end.</summary>
    protected void HoldFreshBase(Engine.BaseTarballInProgress fresh) =>
        BuildEngine4.RegisterTaskObject(FreshBaseKey, fresh, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    private string BaseHandedOverKey => $"MakinaStates.Image.Sdk.BaseHandedOver/{BuildId}";

    /// <summary>A fresh base whose raw tar the finisher writes the tarball of (Stage1), for Stage3 to record.</summary>
    protected sealed record BaseHandedOver(string TarballPath, string ImportTag);

    /// <summary>Nothing to give back (the finisher owns the raw tar and its lock): only what Stage3 records of it.</summary>
    protected void HoldBaseHandedOver(BaseHandedOver handedOver) =>
        BuildEngine4.RegisterTaskObject(BaseHandedOverKey, handedOver, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    /// <summary>
    /// The fresh base's tarball. Written by the finisher (<see cref="Engine.BaseTarballFinisher"/>): never waited for; the
    /// candidate's key (<paramref name="describedKey"/>: a cold build's, which had no base yet) is recorded against the tarball to come (<see cref="Settings.InputsKey.RecordPendingAlias"/>),
    /// and if the tarball is already there its import is tagged now. Written in-process (no dotnet host to run the
    /// finisher with): waited for, and its import tagged with its hash. The image does not depend on it: a failure is
    /// a warning, and the next build makes the base again.
    /// </summary>
    /// <returns>The tarball this build made and wrote, or null (no fresh base, it could not be written, or it is still being written).</returns>
    protected async System.Threading.Tasks.Task<string?> FinishFreshBaseAsync(Engine.DockerEngine engine, string stage, Settings.InputsKey? describedKey, string candidateId,
        CancellationToken cancellationToken)
    {
        if (BuildEngine4.UnregisterTaskObject(BaseHandedOverKey, RegisteredTaskObjectLifetime.Build) is BaseHandedOver handedOver)
        {
            return await RecordHandedOverBaseAsync(engine, stage, handedOver, describedKey, candidateId, cancellationToken).ConfigureAwait(false);
        }
        if (BuildEngine4.UnregisterTaskObject(FreshBaseKey, RegisteredTaskObjectLifetime.Build) is not Engine.BaseTarballInProgress fresh)
        {
            return null;
        }
        using (fresh)
        {
            try
            {
                await fresh.FinishAsync(engine, message => Log.LogMessage(MessageImportance.High, "{0}: {1}", stage, message), cancellationToken).ConfigureAwait(false);
                return fresh.TarballPath;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogCodedWarning(MsiCodes.BaseTarballNotWritten, MsiMessages.Format("BaseTarballNotWritten", fresh.TarballPath, e.Message.TrimEnd('.')), fresh.TarballPath);
                return null;
            }
        }
    }

    private async System.Threading.Tasks.Task<string?> RecordHandedOverBaseAsync(Engine.DockerEngine engine, string stage, BaseHandedOver handedOver,
        Settings.InputsKey? describedKey, string candidateId, CancellationToken cancellationToken)
    {
        // First the pending alias, then the look at the tarball: the finisher renames first and is never waited for, so
        // either this build sees the tarball, or the next build's key resolves the pending alias through its origin.
        describedKey?.RecordPendingAlias(candidateId, Build.IntermediateDirectory, handedOver.TarballPath, handedOver.ImportTag);
        if (Engine.BaseTarballFinisher.IsRunning(Build.MsDataDir, handedOver.TarballPath)
            || Engine.BaseTarballFinisher.ReadOrigin(handedOver.TarballPath) is not { } origin || origin.ImportTag != handedOver.ImportTag
            || !File.Exists(handedOver.TarballPath))
        {
            Log.LogMessage(MessageImportance.High, "{0}: the base tarball {1} is still being written beside the build (not waited for; the next build that needs the base tags its import).",
                stage, handedOver.TarballPath);
            return null;
        }
        var repository = Engine.BaseImageImport.Repository(Build.MsOs, Build.MsOsRelease);
        if (await engine.TryInspectImageAsync($"{repository}:{handedOver.ImportTag}", cancellationToken).ConfigureAwait(false) is not { } import)
        {
            return handedOver.TarballPath;
        }
        // Untagged meanwhile by a build that adopted it: TagAsync is idempotent on the engine.
        var reference = await Engine.BaseImageImport.TagAsync(engine, import.ID, handedOver.TarballPath, Engine.BaseTarball.Tag(origin.Sha256), Build.MsOs, Build.MsOsRelease,
            handedOver.ImportTag, cancellationToken).ConfigureAwait(false);
        Log.LogMessage(MessageImportance.High, "{0}: wrote the base tarball {1} ({2}); its import is {3}.", stage, handedOver.TarballPath,
            Engine.TransferProgress.Megabytes(new FileInfo(handedOver.TarballPath).Length), reference);
        return handedOver.TarballPath;
    }

    /// <summary>Cleanup must run even when the build was cancelled, so it gets its own bounded token.</summary>
    protected static CancellationToken CleanupToken() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;
}
