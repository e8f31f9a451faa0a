using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage3: run the user's stage3.sh in the booted container, save the ACLs (docker commit drops them), stop
/// systemd cleanly and commit the candidate. The container is removed in every case.
/// </summary>
public sealed class Stage3BuildAndCommit : ImageBuildTask
{
    /// <summary>From Stage2: the booted build container.</summary>
    [Required] public string ContainerId { get; set; } = "";

    /// <summary>From Stage2: the injected tree's fingerprint as it was sent (the key's tree line).</summary>
    [Required] public string InjectedTreeFingerprint { get; set; } = "";

    private const int StopTimeoutSeconds = 60;

    private DateTimeOffset? Epoch => Build.SourceDateEpoch?.Time;

    [Output] public ITaskItem? Candidate { get; private set; }

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var steps = new StepTimes();
        // The key describes what is in the image: Stage0's, with the tree as Stage2 sent it.
        var key = InputsKey.Parse(Build.InputsKeyText).WithTree(InjectedTreeFingerprint);
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var containerRemoved = false;
        ReleaseStageContainerGuard();
        try
        {
            var result = await RunStageScriptAsync(engine, ContainerId, "Stage3", "stage3.sh", "stage3",
                ["/bin/bash", $"{BootstrapScriptsInContainer}/stage3.sh"], cancellationToken).ConfigureAwait(false);
            if (result.ExitCode != 0)
            {
                throw ImageBuildException.ScriptFailed(MsiCodes.Stage3ScriptFailed, "Stage3ScriptFailed", result.ExitCode, result.LastLines);
            }
            steps.Mark("stage3.sh");

            if (string.Equals(Build.MsDoSnapshot, "yes", StringComparison.OrdinalIgnoreCase))
            {
                await RunStepAsync(engine, "snapshot.sh", MsiCodes.SnapshotFailed, nameof(MsiCodes.SnapshotFailed), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                Log.LogMessage(MessageImportance.Normal, "Stage3: MsDoSnapshot={0}: the image keeps machine id, keys, logs and caches.", Build.MsDoSnapshot);
            }
            steps.Mark("snapshot.sh");
            // Then, in the same exec: /docker held the build-time scripts, not image content. The secrets live in the /run
            // tmpfs (never committed); they are removed all the same before systemd stops.
            await RunStepAsync(engine, "save-acls.sh", MsiCodes.AclSaveFailed, nameof(MsiCodes.AclSaveFailed), cancellationToken,
                then: $"{EmulatedPlatformUnits.RemoveCommand}; rm -rf /docker {Settings.BuildSecrets.Directory}").ConfigureAwait(false);
            steps.Mark("save-acls.sh and clean /docker");
            if (Build.MsInit == InitSystem.None && (!Build.RewritesLayers || (await engine.IdentityAsync(cancellationToken).ConfigureAwait(false)).IsPodman))
            {
                await WarnAboutAclsWithoutInitAsync(engine, cancellationToken).ConfigureAwait(false);
            }

            if (Build.PlatformEmulated && Build.MsInit == InitSystem.Systemd)
            {
                await StopEmulatedSystemdAsync(engine, cancellationToken).ConfigureAwait(false);
            }
            // SIGRTMIN+3 (the container's stop signal) lets systemd shut down cleanly before the commit.
            await engine.Client.Containers.StopContainerAsync(ContainerId, new ContainerStopParameters { WaitBeforeKillSeconds = (uint)StopTimeoutSeconds }, cancellationToken).ConfigureAwait(false);
            steps.Mark("stop");

            // Committed under a build-private tag, tagged candidate only once complete: a failure never touches the
            // previous candidate, and the new image is never untagged (a concurrent prune cannot take it).
            CommitContainerChangesResponse commit;
            using (TransferProgress.Every(elapsed => $"Stage3: committing {Build.ImageCandidate}… {elapsed.TotalSeconds:0} s",
                message => Log.LogMessage(MessageImportance.High, "{0}", message)))
            {
                commit = await engine.CommitUnderTemporaryTagAsync(new CommitContainerChangesParameters
                {
                    ContainerID = ContainerId,
                    Cmd = ShellWords.Split(Build.MsCommand).ToList(),
                    StopSignal = Build.MsInit == InitSystem.None ? "SIGTERM" : SystemdContainerSpec.StopSignal,
                    // The container's own Env (the base image's PATH among it) is merged in by the engine.
                    Env = ["container=docker", .. Build.ImageEnvironment],
                    ExposedPorts = Build.ExposedPorts,
                    Volumes = Build.ImageVolumes,
                    Labels = ImageLabels(CommitLabels(key)),
                }, Build.ImageCandidate, BuildId, cancellationToken, RewriteLayer(engine, Epoch, "Stage3")).ConfigureAwait(false);
            }
            steps.Mark("commit");

            // Committed and tagged: the container goes.
            await engine.RemoveContainerAsync(ContainerId, CleanupToken()).ConfigureAwait(false);
            containerRemoved = true;

            await PrunePreviousImagesAsync(engine).ConfigureAwait(false);

            var committed = await engine.Client.Images.InspectImageAsync(commit.ID, cancellationToken).ConfigureAwait(false);
            Candidate = CandidateItem.Create(Build, commit.ID, committed.Size);
            key.RecordAsLastCandidate(Build.IntermediateDirectory);
            steps.Mark("tag, remove container, prune");
            if (await FinishFreshBaseAsync(engine, "Stage3", key.Base == InputsKey.MissingBase ? WithEpochOfMadeBase(key) : null, commit.ID, cancellationToken)
                .ConfigureAwait(false) is { } tarball)
            {
                RecordKeyWithWrittenBase(key, tarball, commit.ID);
            }
            steps.Mark("base tarball");
            Concurrency.UnfinishedBuild.Clear(Build.IntermediateDirectory);
        }
        finally
        {
            try
            {
                if (!containerRemoved)
                {
                    await engine.RemoveContainerAsync(ContainerId, CleanupToken()).ConfigureAwait(false);
                }
                await DataVolume.RemoveAsync(engine, BuildId, CleanupToken()).ConfigureAwait(false);
                steps.Mark("cleanup");
                Log.LogMessage(MessageImportance.Normal, "Stage3 steps: {0}", steps);
            }
            finally
            {
                // With MsPush=true the push still needs the image to itself; it releases the lock.
                if (!KeepImageLock)
                {
                    ReleaseImageLock();
                }
            }
        }
    }

    /// <summary>
    /// qemu user mode renumbers real-time signals between the host and the guest: the engine's SIGRTMIN+3 reaches an
    /// emulated systemd as another signal and the stop waits out its timeout. The guest signals its own PID 1 instead
    /// (37 is SIGRTMIN+3 in every Linux guest ABI), and the container is given the stop timeout to exit.
    /// </summary>
    private async System.Threading.Tasks.Task StopEmulatedSystemdAsync(DockerEngine engine, CancellationToken cancellationToken)
    {
        try
        {
            await ContainerExec.RunAsync(engine.Client, ContainerId, ["/bin/sh", "-c", "kill -37 1"], null, _ => { }, cancellationToken).ConfigureAwait(false);
        }
        catch (Docker.DotNet.DockerApiException)
        {
            // Already stopping: the wait below covers it.
        }
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(TimeSpan.FromSeconds(StopTimeoutSeconds));
        try
        {
            await engine.Client.Containers.WaitContainerAsync(ContainerId, wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // Not down in time: the engine's stop below ends it.
        }
    }

    /// <summary>This build keyed the candidate on a base that did not exist yet: the key with the written tarball (and the
    /// epoch it gave, when the epoch was left to the base) is its alias.</summary>
    private void RecordKeyWithWrittenBase(InputsKey key, string tarball, string candidateId)
    {
        if (key.Base != InputsKey.MissingBase || tarball != Build.BaseImagePath || Mono.Unix.Native.Syscall.lstat(tarball, out var stat) != 0)
        {
            return;
        }
        var cache = Injection.ContentHashCache.Load(Path.Combine(Build.IntermediateDirectory, Injection.ContentHashCache.FileName));
        var written = cache.HashOf(tarball, stat);
        cache.Save();
        WithEpochOfMadeBase(key).WithBase(written).RecordAlias(candidateId, Build.IntermediateDirectory);
    }

    /// <summary>The key as the next build composes it from the tarball this build made, but for the base's own hash.</summary>
    private InputsKey WithEpochOfMadeBase(InputsKey key) =>
        // The next build reads the epoch from the tarball this build wrote (it has the base's time).
        key.Epoch == Settings.SourceDateEpoch.BaseOrigin && Build.SourceDateEpoch?.Seconds is not null ? key.WithEpoch(Build.SourceDateEpoch.KeyValue) : key;

    /// <summary>The description's labels (generated, then MsLabel), created stamped (the epoch, else now), then the SDK's own.</summary>
    private Dictionary<string, string> CommitLabels(InputsKey key)
    {
        var labels = ImageConfiguration.Labels(Description.TaskItems(Build.Labels));
        if (Build.IsTrue(Build.MsGenerateLabelCreated))
        {
            // Not an input (it would make every build out of date): stamped at the commit, the epoch of a reproducible image.
            labels[CreatedLabel] = (Epoch ?? DateTimeOffset.UtcNow).UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        }
        labels[BuildLabels.Image] = Build.MsImage;
        labels[BuildLabels.InputsKey] = key.Value;
        if (Build.CorpusCommit.Length > 0)
        {
            labels[BuildLabels.CorpusCommit] = Build.CorpusCommit;
            labels["org.opencontainers.image.revision"] = Build.CorpusCommit;
        }
        return labels;
    }

    private const string CreatedLabel = "org.opencontainers.image.created";

    /// <summary>Without init no unit puts back the ACLs and xattrs that the commit drops (from the tree or stage3.sh): say so.</summary>
    private async System.Threading.Tasks.Task WarnAboutAclsWithoutInitAsync(DockerEngine engine, CancellationToken cancellationToken)
    {
        var saved = new List<string>();
        await ContainerExec.RunAsync(engine.Client, ContainerId, ["/bin/sh", "-c", "sed -n 's/^# file: //p' /acls.txt /xattrs.txt 2>/dev/null | sort -u"],
            null, saved.Add, cancellationToken, keepLastLines: 0).ConfigureAwait(false);
        if (saved.Count > 0)
        {
            LogCodedWarning(MsiCodes.AclsNotRestoredWithoutInit, MsiMessages.Format("AclsNotRestoredWithoutInit", saved.Count, string.Join(", ", saved.Take(3))));
        }
    }

    /// <param name="then">A command run after the script succeeded, in the same exec (one round trip less).</param>
    private async System.Threading.Tasks.Task RunStepAsync(DockerEngine engine, string script, string code, string text, CancellationToken cancellationToken,
        string? then = null)
    {
        IList<string> command = then is null
            ? ["/bin/bash", $"{BootstrapScriptsInContainer}/{script}"]
            : ["/bin/sh", "-c", $"/bin/bash {BootstrapScriptsInContainer}/{script} || exit $?; {then} || true"];
        var result = await RunStageScriptAsync(engine, ContainerId, "Stage3", script, script, command, cancellationToken).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw ImageBuildException.ScriptFailed(code, text, result.ExitCode, result.LastLines);
        }
    }

    /// <summary>
    /// The candidate and stage1 images this one replaced are now untagged: remove those of this image project
    /// that no container uses, so repeated builds do not pile up images.
    /// </summary>
    private async System.Threading.Tasks.Task PrunePreviousImagesAsync(DockerEngine engine)
    {
        try
        {
            var pruned = await engine.Client.Images.PruneImagesAsync(new ImagesPruneParameters
            {
                Filters = new Dictionary<string, IDictionary<string, bool>>
                {
                    ["dangling"] = new Dictionary<string, bool> { ["true"] = true },
                    ["label"] = new Dictionary<string, bool> { [$"{BuildLabels.Image}={Build.MsImage}"] = true },
                },
            }, CleanupToken()).ConfigureAwait(false);
            if (pruned.ImagesDeleted is { Count: > 0 } deleted)
            {
                Log.LogMessage(MessageImportance.Low, "Removed {0} replaced image layer(s) of {1}.", deleted.Count, Build.MsImage);
            }
        }
        catch (Docker.DotNet.DockerApiException e)
        {
            // A prune already running on the engine (another build) is not a reason to fail this one.
            Log.LogMessage(MessageImportance.Low, "Pruning replaced images skipped: {0}", e.Message);
        }
    }
}
