using Docker.DotNet;
using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Build.Framework;
using Task = Microsoft.Build.Utilities.Task;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>The stage containers of a build: how they are made, labelled, given the data dir, and run scripts.</summary>
public abstract partial class ImageBuildTask
{
    /// <summary>Where the effective stage scripts are in a stage container (the seed's path).</summary>
    protected const string BootstrapScriptsInContainer = "/docker/injected_volumes/bootstrap_scripts";

    /// <summary>
    /// The environment of the stage scripts: every MS_* setting, then MsDockerArgs' -e values. Given to the scripts
    /// (exec or env(1)), never as the container's Env, which docker commit would bake into the image.
    /// </summary>
    protected IList<string> StageEnvironmentList() => Build.StageEnvironment();

    /// <summary>
    /// Runs a stage script through exec with the stage environment: each output line at normal importance (prefixed
    /// with <paramref name="linePrefix"/>; binlogs keep it all), and a heartbeat at high importance while it runs.
    /// </summary>
    protected async Task<Engine.ContainerExec.Result> RunStageScriptAsync(Engine.DockerEngine engine, string containerId, string stage,
        string script, string linePrefix, IList<string> command, CancellationToken cancellationToken)
    {
        using var heartbeat = StageScriptHeartbeat(stage, script);
        return await Engine.ContainerExec.RunAsync(engine.Client, containerId, command, StageEnvironmentList(),
            heartbeat.Observe(line => Log.LogMessage(MessageImportance.Normal, "{0}: {1}", linePrefix, line)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The heartbeat of a script that runs for <paramref name="stage"/> (see <see cref="Engine.ScriptHeartbeat"/>).</summary>
    protected Engine.ScriptHeartbeat StageScriptHeartbeat(string stage, string script) =>
        new(stage, script, message => Log.LogMessage(MessageImportance.High, "{0}", message));

    /// <summary>
    /// The commit of a stage container with its layer written again (<see cref="Engine.TopLayerRewrite.CommitAsync"/>:
    /// ACLs and xattrs in, times clamped to the epoch), for <see cref="Engine.DockerEngine.CommitUnderTemporaryTagAsync"/>;
    /// null (the engine's own commit) with MsRewriteLayers=false. Podman keeps its layers as committed: its load reads
    /// every layer an archive's manifest names, so a top layer alone cannot be loaded over the engine's lower layers.
    /// </summary>
    protected Func<Docker.DotNet.Models.CommitContainerChangesParameters, CancellationToken, Task<string>>? RewriteLayer(Engine.DockerEngine engine,
        DateTimeOffset? epoch, string stage)
    {
        if (!Build.RewritesLayers)
        {
            return null;
        }
        return async (commit, cancellationToken) =>
        {
            if ((await engine.IdentityAsync(cancellationToken).ConfigureAwait(false)).IsPodman)
            {
                Log.LogMessage(MessageImportance.Normal, "{0}: Podman: the layer stays as committed (its load needs every layer); the ACLs are put back at boot.", stage);
                return (await engine.CommitAsync(commit, cancellationToken).ConfigureAwait(false)).ID;
            }
            return await Engine.TopLayerRewrite.CommitAsync(engine, commit, epoch, Build.IntermediateDirectory,
                message => Log.LogMessage(MessageImportance.Normal, "{0}: {1}", stage, message), cancellationToken).ConfigureAwait(false);
        };
    }

    /// <summary>
    /// docker commit merges the container's labels into the image: the per-build ones and MsDockerArgs' are blanked so
    /// they do not mark every container later run from the image.
    /// </summary>
    protected Dictionary<string, string> ImageLabels(Dictionary<string, string> labels)
    {
        foreach (var name in new[] { Engine.BuildLabels.BuildId, Engine.BuildLabels.OwnerPid, Engine.BuildLabels.OwnerHost, Engine.BuildLabels.OwnerProcess, Engine.BuildLabels.Stage }
                     .Concat(Build.DockerRunArguments.Labels.Keys))
        {
            labels.TryAdd(name, "");
        }
        return labels;
    }

    /// <summary>
    /// The data dir is mounted inside the /run tmpfs and reached through the /docker/data link: a mount point made
    /// in the container's own file system would be committed into the image as an empty folder.
    /// </summary>
    protected const string DataMountInContainer = "/run/makinastates/data";

    /// <summary>Run in each stage container before its script: the seed's /docker/data path.</summary>
    protected const string LinkDataDirectory = "mkdir -p /docker && ln -sfn " + DataMountInContainer + " /docker/data";

    /// <summary>
    /// What every stage container gets besides its own spec: the MsDockerArgs flags and the data dir inside the /run
    /// tmpfs (never committed): a bind mount on a local engine, this build's uploaded volume on a remote one.
    /// </summary>
    /// <param name="writableData">
    /// The seed's stage2 and stage3 may write to /docker/data: the data dir is then mounted read-write, and what the SDK
    /// keeps there (<see cref="Engine.DataVolume.IsKeptBySdk"/>: the base tarballs, the locks) is bound read-only over
    /// itself, so a script can neither change, remove nor rename it (a mount point cannot be unlinked). Chosen over the
    /// image's own data/&lt;image&gt;/ subtree, which would leave /docker/data/out.txt read-only where the seed wrote
    /// it, and over an overlay, whose writes would not reach the host's data dir as the seed's do (and which needs
    /// mount rights the unprivileged stage containers lack). Nothing written there is committed: it is a mount.
    /// Stage1 keeps it read-only: its image is keyed and shared, and the seed's stage1 only reads.
    /// </param>
    protected async Task<Docker.DotNet.Models.CreateContainerParameters> WithStageOptionsAsync(Docker.DotNet.Models.CreateContainerParameters container,
        Engine.DockerEngine engine, string? dataDirectory, string image, IReadOnlyCollection<string> excludedDataNames, CancellationToken cancellationToken,
        bool writableData = false)
    {
        Build.DockerRunArguments.ApplyTo(container);
        if (dataDirectory is null)
        {
            return container;
        }
        var host = container.HostConfig ??= new Docker.DotNet.Models.HostConfig();
        host.Tmpfs ??= new Dictionary<string, string>();
        host.Tmpfs.TryAdd("/run", "rw,nosuid,nodev,mode=755");
        if (engine.SharesHostFileSystem)
        {
            // A bind Mount, not Binds: an engine that only looks local (a socket forwarded from elsewhere) then fails
            // with "bind source path does not exist" instead of silently mounting an empty folder it made.
            var source = dataDirectory.TrimEnd('/');
            host.Mounts = [.. host.Mounts ?? [], new Docker.DotNet.Models.Mount { Type = "bind", Source = source, Target = DataMountInContainer, ReadOnly = !writableData }];
            if (writableData)
            {
                host.Mounts = [.. host.Mounts, .. Directory.EnumerateFileSystemEntries(source).Select(Path.GetFileName).OfType<string>()
                    .Where(name => Engine.DataVolume.IsKeptBySdk(name) || excludedDataNames.Contains(name))
                    .Order(StringComparer.Ordinal)
                    .Select(name => new Docker.DotNet.Models.Mount { Type = "bind", Source = Path.Combine(source, name), Target = $"{DataMountInContainer}/{name}", ReadOnly = true })];
            }
        }
        else
        {
            // Guarded before it exists: Ctrl+C during the upload (the long part) must not leave it behind. The SDK's
            // own files are never uploaded, and the volume is this build's alone: writable as it is.
            GuardDataVolume();
            var volume = await Engine.DataVolume.EnsureAsync(engine, BuildId, dataDirectory, excludedDataNames, container.Image, StageContainerLabels("data", image),
                message => Log.LogMessage(MessageImportance.High, "{0}", message), cancellationToken).ConfigureAwait(false);
            host.Mounts = [.. host.Mounts ?? [], new Docker.DotNet.Models.Mount { Type = "volume", Source = volume, Target = DataMountInContainer, ReadOnly = !writableData }];
        }
        return container;
    }

    /// <summary>Labels of a stage container: whose build it is, so failures and cancellations can find it.</summary>
    protected Dictionary<string, string> StageContainerLabels(string stage, string image)
    {
        var labels = new Dictionary<string, string>
        {
            [Engine.BuildLabels.BuildId] = BuildId,
            [Engine.BuildLabels.Image] = image,
            [Engine.BuildLabels.Stage] = stage,
        };
        Engine.BuildOwnership.AddLabels(labels);
        return labels;
    }

    /// <summary>
    /// Creates a stage container. A local-looking engine may not be on this machine after all (a socket forwarded into
    /// a CI job container): it either cannot find the data dir, or mounts a folder of the same name on its own machine.
    /// A marker file written here for this build tells them apart before anything runs in the container.
    /// </summary>
    protected async Task<Docker.DotNet.Models.CreateContainerResponse> CreateStageContainerAsync(Engine.DockerEngine engine,
        Docker.DotNet.Models.CreateContainerParameters container, string? dataDirectory, CancellationToken cancellationToken)
    {
        var marker = dataDirectory is not null && engine.SharesHostFileSystem ? Path.Combine(dataDirectory, $"{DataDirectoryMarkerPrefix}{BuildId}") : null;
        if (marker is not null)
        {
            File.WriteAllText(marker, "");
        }
        try
        {
            var created = await engine.Client.Containers.CreateContainerAsync(container, cancellationToken).ConfigureAwait(false);
            if (marker is not null && !await Engine.ContainerFiles.ExistsAsync(engine, created.ID, $"{DataMountInContainer}/{Path.GetFileName(marker)}", cancellationToken).ConfigureAwait(false))
            {
                await engine.RemoveContainerAsync(created.ID, CleanupToken()).ConfigureAwait(false);
                throw new ImageBuildException(MsiCodes.EngineDoesNotShareFiles, MsiMessages.Format("EngineDoesNotShareFiles", engine.Endpoint.Describe(),
                    $"its {dataDirectory} is not this machine's: a file written there now is missing in the container"));
            }
            return created;
        }
        catch (DockerApiException e) when (marker is not null && e.ResponseBody?.Contains("bind source path does not exist", StringComparison.Ordinal) == true)
        {
            throw new ImageBuildException(MsiCodes.EngineDoesNotShareFiles, MsiMessages.Format("EngineDoesNotShareFiles", engine.Endpoint.Describe(), e.ResponseBody.Trim()));
        }
        finally
        {
            if (marker is not null)
            {
                File.Delete(marker);
            }
        }
    }

    /// <summary>The per-build marker in the data dir (never uploaded, removed at once).</summary>
    public const string DataDirectoryMarkerPrefix = ".msimage-marker-";
}
