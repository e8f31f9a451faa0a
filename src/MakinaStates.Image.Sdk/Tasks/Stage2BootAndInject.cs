using System.Diagnostics;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage2: create the build container from the stage1 image with systemd as PID 1, copy the merged injected tree
/// to '/' (POSIX ACLs included: the seed's reason for not using Dockerfile ADD), boot, wait for systemd, run stage2.sh.
/// The container stays for Stage3; on failure it is removed here.
/// </summary>
public sealed class Stage2BootAndInject : ImageBuildTask
{
    [Required] public string MsImage { get; set; } = "";
    [Required] public string MsImageDir { get; set; } = "";
    [Required] public string MsCommand { get; set; } = "";
    [Required] public string Stage1ImageId { get; set; } = "";
    [Required] public string Stage2Name { get; set; } = "";
    [Required] public string BootstrapScriptsDirectory { get; set; } = "";
    public ITaskItem[] InjectedVolumes { get; set; } = [];

    /// <summary>MsSecret items, written to /run/secrets (tmpfs) for stage2.sh and stage3.sh.</summary>
    public ITaskItem[] Secrets { get; set; } = [];
    public int BootTimeoutSeconds { get; set; } = 180;
    public string MsDataDir { get; set; } = "";

    /// <summary>The base tarball (MsBaseImagePath): not uploaded with the data dir to a remote engine.</summary>
    public string BaseImagePath { get; set; } = "";

    /// <summary>From Stage0: the corpus project's commit to deploy, if any.</summary>
    public string CorpusCommit { get; set; } = "";
    public string MsGitUrl { get; set; } = "";
    public string MsGitBranch { get; set; } = "stable";

    /// <summary>MsExposeInjectedVolumes: also lay the merged tree at /docker/injected_volumes while building.</summary>
    public bool ExposeInjectedVolumes { get; set; } = true;

    [Output] public string ContainerId { get; private set; } = "";

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        // Stage0 validated this tree and warned about what it skips; collect it again as it is now. The build also
        // sees it at /docker/injected_volumes (the seed's layout) with the effective scripts; /docker is removed
        // before the commit.
        var sources = InjectedTree.ImageSources(MsImageDir, InjectedVolumes).ToList();
        IEnumerable<InjectedTree.Source> exposed = ExposeInjectedVolumes
            ? sources.Select(s => s with { TargetPath = "/docker/injected_volumes/" + s.TargetPath.TrimStart('/') }).ToList()
            : [];
        // git work trees made on this host (the image needs no git, a remote engine no access to this host).
        var checkouts = new List<string>();
        if (CorpusCommit.Length > 0)
        {
            checkouts.Add(CorpusProject.CheckOut(MsImageDir, CorpusCommit, detach: true));
            sources.Add(new InjectedTree.Source(checkouts[^1], CorpusProject.DeployPath + "/"));
        }
        if (CorpusProject.LocalRepository(MsGitUrl) is { } localMakinaStates)
        {
            // stage2.sh installs makina-states from /docker/makina-states (the seed's volume) instead of cloning.
            checkouts.Add(CorpusProject.CheckOut(localMakinaStates, MsGitBranch, detach: false));
            exposed = [.. exposed, new InjectedTree.Source(checkouts[^1], "/docker/makina-states/")];
        }
        InjectedTree tree;
        try
        {
            tree = InjectedTree.Collect([.. sources, .. exposed,
                new InjectedTree.Source(BootstrapScriptsDirectory, BootstrapScriptsInContainer + "/", [StageScriptResolver.GeneratedManifestName])]);
            await BootAndInjectAsync(tree, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var checkout in checkouts)
            {
                Directory.Delete(checkout, recursive: true);
            }
        }
    }

    private async System.Threading.Tasks.Task BootAndInjectAsync(InjectedTree tree, CancellationToken cancellationToken)
    {

        var steps = new StepTimes();
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var info = await engine.Client.System.GetSystemInfoAsync(cancellationToken).ConfigureAwait(false);
        var spec = SystemdContainerSpec.Create(Stage1ImageId, Stage2Name, ShellWords.Split(MsCommand).ToList(), StageContainerLabels("stage2", MsImage), info.CgroupVersion);
        var created = await CreateStageContainerAsync(engine, await WithStageOptionsAsync(spec, engine, MsDataDir, MsImage, [Path.GetFileName(BaseImagePath)], cancellationToken).ConfigureAwait(false), MsDataDir, cancellationToken).ConfigureAwait(false);
        GuardStageContainer(created.ID);
        steps.Mark("create");
        try
        {
            // Injected before the start, so systemd boots with the injected units in place.
            var watch = Stopwatch.StartNew();
            await ArchiveUpload.UploadAsync(engine, created.ID, tree, cancellationToken,
                message => Log.LogMessage(MessageImportance.High, "Stage2: {0}", message)).ConfigureAwait(false);
            Log.LogMessage(MessageImportance.Normal, "Stage2: injected {0} entries in {1:0.0} s.", tree.Nodes.Count, watch.Elapsed.TotalSeconds);
            steps.Mark("inject");

            await engine.Client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
            steps.Mark("start");
            await SystemdBoot.WaitAsync(engine, created.ID, TimeSpan.FromSeconds(BootTimeoutSeconds),
                message => Log.LogMessage(MessageImportance.Normal, "Stage2: {0}", message), cancellationToken).ConfigureAwait(false);
            steps.Mark("boot");

            foreach (var secret in BuildSecrets.Resolve(Secrets))
            {
                await ContainerExec.WriteFileAsync(engine.Client, created.ID, $"{BuildSecrets.Directory}/{secret.Name}", secret.ReadValue(), cancellationToken).ConfigureAwait(false);
                Log.LogMessage(MessageImportance.Normal, "Stage2: secret {0} is at {1}/{0}.", secret.Name, BuildSecrets.Directory);
            }
            steps.Mark("secrets");
            var result = await RunStageScriptAsync(engine, created.ID, "Stage2", "stage2.sh", "stage2",
                ["/bin/sh", "-c", $"{LinkDataDirectory} && exec /bin/bash {BootstrapScriptsInContainer}/stage2.sh"], cancellationToken).ConfigureAwait(false);
            if (result.ExitCode != 0)
            {
                throw new ImageBuildException(MsiCodes.Stage2ScriptFailed,
                    MsiMessages.Format("Stage2ScriptFailed", result.ExitCode, Environment.NewLine, string.Join(Environment.NewLine, result.LastLines)),
                    Path.Combine(BootstrapScriptsDirectory, "stage2.sh"));
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
}
