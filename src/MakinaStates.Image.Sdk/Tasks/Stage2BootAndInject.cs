using System.Diagnostics;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage2: create the build container from the stage1 image with systemd as PID 1, copy the merged injected tree
/// to '/' (POSIX ACLs included: the seed's reason for not using Dockerfile ADD), boot, wait for systemd, run stage2.sh.
/// The container stays for Stage3; on failure it is removed here.
/// </summary>
public sealed class Stage2BootAndInject : ImageBuildTask
{
    /// <summary>From Stage1: the image the build container starts from.</summary>
    [Required] public string Stage1ImageId { get; set; } = "";

    /// <summary>Where the list of injected paths is in the build container (NUL-separated; /docker is never committed).</summary>
    public const string InjectedPathsInContainer = "/docker/injected-paths";

    /// <summary>stage2.sh's exit code when makina-states cannot be cloned (sysexits' EX_UNAVAILABLE).</summary>
    private const int MakinaStatesUnavailableExitCode = 69;

    [Output] public string ContainerId { get; private set; } = "";

    /// <summary>
    /// The fingerprint of the injected tree as it was sent, for the key Stage3 stamps: Stage0's, unless a file was
    /// edited while the build ran (then the key describes the tree that is in the image, not the one Stage0 read).
    /// </summary>
    [Output] public string InjectedTreeFingerprint { get; private set; } = "";

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        // The tree Stage0 collected and fingerprinted (collected again only where this process did not run Stage0).
        // The build also sees it at /docker/injected_volumes (the seed's layout) with the effective scripts; /docker is
        // removed before the commit.
        var collected = TakeCollectedTree();
        var tree = collected ?? InjectedTree.Collect(InjectedTree.ImageSources(Build.MsImageDir, Description.TaskItems(Build.InjectedVolumes)));
        var injected = tree.Nodes.ToList();
        // git work trees made on this host (the image needs no git, a remote engine no access to this host), and the
        // list of injected paths.
        var temporaryFolders = new List<string>();
        try
        {
            if (Build.CorpusCommit.Length > 0)
            {
                temporaryFolders.Add(CorpusProject.CheckOut(Build.MsImageDir, Build.CorpusCommit, detach: true));
                tree.Add(new InjectedTree.Source(temporaryFolders[^1], CorpusProject.DeployPath + "/"));
            }
            // What the user injected, for the build's own steps to leave alone (snapshot.sh, stage2.sh).
            temporaryFolders.Add(Directory.CreateTempSubdirectory("msimage-paths-").FullName);
            var pathList = Path.Combine(temporaryFolders[^1], "injected-paths");
            File.WriteAllBytes(pathList, tree.PathList());
            var imagePaths = tree.Nodes.Select(n => n.ImagePath).ToHashSet(StringComparer.Ordinal);

            if (Build.ExposesInjectedVolumes)
            {
                tree.AddCopy(injected, "/docker/injected_volumes/");
            }
            if (Build.RunsMakinaStates && CorpusProject.LocalRepository(Build.MsGitUrl) is { } localMakinaStates)
            {
                // stage2.sh installs makina-states from /docker/makina-states (the seed's volume) instead of cloning.
                temporaryFolders.Add(CheckOutMakinaStates(localMakinaStates));
                tree.Add(new InjectedTree.Source(temporaryFolders[^1], "/docker/makina-states/"));
            }
            tree.Add(new InjectedTree.Source(Build.BootstrapScriptsDirectory, BootstrapScriptsInContainer + "/", [StageScriptResolver.GeneratedManifestName]));
            tree.Add(new InjectedTree.Source(pathList, InjectedPathsInContainer));
            var changed = new Dictionary<string, SentContent>(StringComparer.Ordinal);
            await BootAndInjectAsync(tree, imagePaths, changed, cancellationToken).ConfigureAwait(false);
            InjectedTreeFingerprint = FingerprintAsSent(injected, changed, fingerprintedByStage0: collected is not null);
        }
        finally
        {
            foreach (var folder in temporaryFolders)
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    /// <summary>The injected tree's fingerprint with the files edited since Stage0 read them, as they were sent.</summary>
    private string FingerprintAsSent(IReadOnlyList<InjectedTree.Node> injected, IReadOnlyDictionary<string, SentContent> changed, bool fingerprintedByStage0)
    {
        var injectedFiles = injected.Select(n => n.HostPath).ToHashSet(StringComparer.Ordinal);
        var edited = changed.Keys.Where(injectedFiles.Contains).Order(StringComparer.Ordinal).ToList();
        if (edited.Count == 0 && fingerprintedByStage0)
        {
            // Sent as Stage0 fingerprinted it: its fingerprint is already the key's (no second pass over the tree).
            return InputsKey.Parse(Build.InputsKeyText).Tree;
        }
        var cache = ContentHashCache.Load(Path.Combine(Build.IntermediateDirectory, ContentHashCache.FileName));
        var fingerprint = TreeFingerprint.Compute(injected, cache, changed);
        if (edited.Count > 0)
        {
            LogCodedWarning(MsiCodes.InjectedFileChangedDuringBuild, MsiMessages.Format("InjectedFileChangedDuringBuild", edited.Count, string.Join(", ", edited.Take(3))), edited[0]);
        }
        return fingerprint;
    }

    private string CheckOutMakinaStates(string repository) =>
        CorpusProject.CheckOut(repository, Build.MsGitBranch, detach: false, failure: output => MakinaStatesUnreachable(output));

    private ImageBuildException MakinaStatesUnreachable(string why) =>
        new(MsiCodes.MakinaStatesUnreachable, MsiMessages.Format("MakinaStatesUnreachable", Build.MsGitUrl, Build.MsGitBranch, why.Trim().TrimEnd('.')));

    /// <summary>Podman's archive API drops ACL xattrs: they are set again from the tree, inside the booted container.</summary>
    private async System.Threading.Tasks.Task RestoreAclsAsync(DockerEngine engine, string containerId, string acls, CancellationToken cancellationToken)
    {
        const string list = "/run/makinastates/injected-acls.txt";
        await ContainerExec.WriteFileAsync(engine.Client, containerId, list, System.Text.Encoding.UTF8.GetBytes(acls), cancellationToken).ConfigureAwait(false);
        var result = await ContainerExec.RunAsync(engine.Client, containerId, ["/bin/sh", "-c", $"cd / && setfacl --restore={list} && rm -f {list}"], null,
            line => Log.LogMessage(MessageImportance.Normal, "Stage2: {0}", line), cancellationToken).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw ImageBuildException.ScriptFailed(MsiCodes.Stage2ScriptFailed, "InjectedAclsNotRestored", result.ExitCode, result.LastLines);
        }
        Log.LogMessage(MessageImportance.Normal, "Stage2: the injected ACLs were set again inside the container (Podman's archive API drops them).");
    }

    private async System.Threading.Tasks.Task BootAndInjectAsync(InjectedTree tree, IReadOnlySet<string> imagePaths, IDictionary<string, SentContent> changed,
        CancellationToken cancellationToken)
    {
        var steps = new StepTimes();
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var identity = await engine.IdentityAsync(cancellationToken).ConfigureAwait(false);
        Log.LogMessage(MessageImportance.Normal, "Stage2: systemd's cgroup: {0}.", identity.SystemdCgroupAccess);
        var spec = SystemdContainerSpec.Create(Stage1ImageId, Build.Stage2Name, ShellWords.Split(Build.MsCommand).ToList(), StageContainerLabels("stage2", Build.MsImage),
            identity.SystemdCgroupAccess, consoleTty: !identity.IsPodman);
        if (Build.MsInit == InitSystem.None)
        {
            // MsInit=none: PID 1 only keeps the container up (the scripts run through exec); MsCommand is the committed Cmd.
            spec.Cmd = InitSystem.KeepAlive;
            spec.StopSignal = "SIGTERM";
        }
        var created = await CreateStageContainerAsync(engine, await WithStageOptionsAsync(spec, engine, Build.MsDataDir, Build.MsImage, [Path.GetFileName(Build.BaseImagePath)], cancellationToken, writableData: true).ConfigureAwait(false), Build.MsDataDir, cancellationToken).ConfigureAwait(false);
        GuardStageContainer(created.ID);
        steps.Mark("create");
        try
        {
            // Injected before the start, so systemd boots with the injected units in place.
            var watch = Stopwatch.StartNew();
            var existing = await ArchiveUpload.UploadAsync(engine, created.ID, tree, cancellationToken,
                message => Log.LogMessage(MessageImportance.High, "Stage2: {0}", message), changed).ConfigureAwait(false);
            Log.LogMessage(MessageImportance.Normal, "Stage2: injected {0} entries in {1:0.0} s.", tree.Nodes.Count, watch.Elapsed.TotalSeconds);
            steps.Mark("inject");
            if (Build.PlatformEmulated && Build.MsInit == InitSystem.Systemd)
            {
                var masked = await EmulatedPlatformUnits.MaskAsync(engine, created.ID, cancellationToken).ConfigureAwait(false);
                Log.LogMessage(MessageImportance.High, "Stage2: {0} under emulation: {1} masked in the build container only (they fail under qemu user mode; the image keeps them).",
                    Build.Platform, masked.Count > 0 ? string.Join(", ", masked.Select(Path.GetFileName)) : "no unit");
            }

            await engine.Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
            steps.Mark("start");
            if (Build.MsInit == InitSystem.Systemd)
            {
                await SystemdBoot.WaitAsync(engine, created.ID, Build.BootTimeout,
                    message => Log.LogMessage(MessageImportance.Normal, "Stage2: {0}", message), cancellationToken).ConfigureAwait(false);
            }
            steps.Mark("boot");
            if (identity.IsPodman && AclRestoreList.Build(tree, existing) is { Length: > 0 } acls)
            {
                await RestoreAclsAsync(engine, created.ID, acls, cancellationToken).ConfigureAwait(false);
            }
            foreach (var secret in Build.BuildSecrets)
            {
                await ContainerExec.WriteFileAsync(engine.Client, created.ID, $"{BuildSecrets.Directory}/{secret.Name}", secret.ReadValue(), cancellationToken).ConfigureAwait(false);
                Log.LogMessage(MessageImportance.Normal, "Stage2: secret {0} is at {1}/{0}.", secret.Name, BuildSecrets.Directory);
            }
            steps.Mark("secrets");
            await ApplyExistingFolderMetadataAsync(engine, created.ID, tree, existing.Where(imagePaths.Contains).ToHashSet(StringComparer.Ordinal), cancellationToken).ConfigureAwait(false);
            var result = await RunStageScriptAsync(engine, created.ID, "Stage2", "stage2.sh", "stage2",
                ["/bin/sh", "-c", $"{LinkDataDirectory} && exec /bin/bash {BootstrapScriptsInContainer}/stage2.sh"], cancellationToken).ConfigureAwait(false);
            if (result.ExitCode == MakinaStatesUnavailableExitCode && Build.RunsMakinaStates)
            {
                // git's own complaint and stage2.sh's line naming what failed.
                throw MakinaStatesUnreachable(string.Join("; ", result.LastLines.TakeLast(2)));
            }
            if (result.ExitCode != 0)
            {
                throw ImageBuildException.ScriptFailed(MsiCodes.Stage2ScriptFailed, "Stage2ScriptFailed", result.ExitCode, result.LastLines,
                    Path.Combine(Build.BootstrapScriptsDirectory, "stage2.sh"));
            }
            ContainerId = created.ID;
            steps.Mark("stage2.sh");
            Log.LogMessage(MessageImportance.Normal, "Stage2 steps: {0}", steps);
        }
        catch
        {
            await engine.RemoveContainerAsync(created.ID, CleanupToken()).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The folders the image already had take what the injected ones carry (rsync -aA; see ExistingFolderMetadata).</summary>
    private async System.Threading.Tasks.Task ApplyExistingFolderMetadataAsync(DockerEngine engine, string containerId, InjectedTree tree,
        IReadOnlySet<string> existing, CancellationToken cancellationToken)
    {
        if (Injection.ExistingFolderMetadata.Script(tree, existing, Build.ExistingFolderMetadataMode) is not var (script, folders))
        {
            return;
        }
        const string path = "/run/makinastates/existing-folders.sh";
        await ContainerExec.WriteFileAsync(engine.Client, containerId, path, System.Text.Encoding.UTF8.GetBytes(script), cancellationToken).ConfigureAwait(false);
        var result = await ContainerExec.RunAsync(engine.Client, containerId, ["/bin/sh", path], null,
            line => Log.LogMessage(MessageImportance.Normal, "Stage2: {0}", line), cancellationToken).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw ImageBuildException.ScriptFailed(MsiCodes.ExistingFolderMetadataFailed, "ExistingFolderMetadataFailed", result.ExitCode, result.LastLines,
                details: [folders, Build.MsExistingFolderMetadata]);
        }
        Log.LogMessage(MessageImportance.Normal, "Stage2: {0} folder(s) the image already had took the injected ones' {1} (MsExistingFolderMetadata={2}).",
            folders, Build.ExistingFolderMetadataMode == Injection.ExistingFolderMetadata.All ? "owner, mode, ACLs and xattrs" : "ACLs and xattrs",
            Build.MsExistingFolderMetadata);
    }
}
