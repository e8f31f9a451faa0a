using Docker.DotNet;
using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Build.Framework;
using Task = Microsoft.Build.Utilities.Task;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Shared shape of the stage tasks: async work with cancellation (Ctrl+C reaches <see cref="Cancel"/>),
/// and every expected failure turned into one coded MSBuild error.
/// </summary>
public abstract class ImageBuildTask : Task, ICancelableTask
{
    private readonly CancellationTokenSource _cancellation = new();

    /// <summary>Build id shared by all stages of one build; labels every container it makes.</summary>
    public string BuildId { get; set; } = "";

    /// <summary>MsDockerHost: the engine endpoint; DOCKER_HOST, the docker context or the local socket when empty.</summary>
    public string MsDockerHost { get; set; } = "";

    /// <summary>MsDockerCertPath: the folder with ca.pem, cert.pem and key.pem; DOCKER_CERT_PATH when empty.</summary>
    public string MsDockerCertPath { get; set; } = "";

    /// <summary>MsDockerTlsVerify: true/false; DOCKER_TLS_VERIFY when empty.</summary>
    public string MsDockerTlsVerify { get; set; } = "";

    /// <summary>MsDockerArgs: docker-run style flags applied to every stage container.</summary>
    public string MsDockerArgs { get; set; } = "";

    /// <summary>MsDockerRemote: auto (a unix socket is local, tcp is remote), true (upload everything), false.</summary>
    public string MsDockerRemote { get; set; } = "";

    /// <summary>MsPush=true: the image lock is held past the last stage, for the push; PushToRegistry releases it.</summary>
    public bool KeepImageLock { get; set; }

    /// <summary>The MS_* settings as the seed passes them to its stage containers (item = name, Value = value).</summary>
    public ITaskItem[] StageEnvironment { get; set; } = [];

    public void Cancel()
    {
        _cancellation.Cancel();
        try
        {
            (BuildEngine4?.GetRegisteredTaskObject(FreshBaseKey, RegisteredTaskObjectLifetime.Build) as Engine.BaseTarballInProgress)?.Abandon();
        }
        catch (Exception)
        {
            // The build is being torn down: MSBuild disposes the fresh base itself.
        }
    }

    /// <summary>How long this stage took, for the build summary.</summary>
    [Output] public string ElapsedSeconds { get; private set; } = "0";

    public sealed override bool Execute()
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        // Ctrl+C reaches Cancel() through MSBuild. SIGTERM (a CI job stopped, `kill`) makes the host exit the process
        // instead: the stage containers of this build are removed on the way out.
        AppDomain.CurrentDomain.ProcessExit += RemoveContainersOnExit;
        try
        {
            ExecuteAsync(_cancellation.Token).GetAwaiter().GetResult();
        }
        catch (ImageBuildException e)
        {
            LogCoded(e);
        }
        catch (OperationCanceledException) when (_cancellation.IsCancellationRequested)
        {
            Log.LogError(null, MsiCodes.Cancelled, MsiCodes.Cancelled, null, 0, 0, 0, 0, "{0}", MsiMessages.Format("Cancelled"));
        }
        catch (Exception e) when (e is IOException or HttpRequestException or TimeoutException or UnauthorizedAccessException)
        {
            // The engine went away mid-build, or the host refused a file operation: still one coded error.
            Log.LogError(null, MsiCodes.EngineOrHostFailure, MsiCodes.EngineOrHostFailure, null, 0, 0, 0, 0, "{0}",
                MsiMessages.Format("EngineOrHostFailure", e.GetType().Name, e.Message));
        }
        catch (DockerApiException e)
        {
            Log.LogError(null, MsiCodes.EngineRefused, MsiCodes.EngineRefused, null, 0, 0, 0, 0, "{0}",
                MsiMessages.Format("EngineRefused", (int)e.StatusCode, e.ResponseBody?.Trim()));
        }
        finally
        {
            AppDomain.CurrentDomain.ProcessExit -= RemoveContainersOnExit;
            ElapsedSeconds = watch.Elapsed.TotalSeconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
        }
        return !Log.HasLoggedErrors;
    }

    private void RemoveContainersOnExit(object? sender, EventArgs e)
    {
        Cancel();
        if (string.IsNullOrEmpty(BuildId))
        {
            return;
        }
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(8));
            using var engine = ConnectEngineAsync(bound.Token).GetAwaiter().GetResult();
            engine.RemoveBuildContainersAsync(BuildId, bound.Token).GetAwaiter().GetResult();
            Engine.DataVolume.RemoveAsync(engine, BuildId, bound.Token).GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            // Exiting: nothing can be reported any more; Stage0 of the next build reaps what is left.
        }
        // The process is ending in the middle of a stage: it must not look like a success.
        Environment.ExitCode = 143;
    }

    protected abstract System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken);

    /// <summary>Where the engine of this build is (MsDockerHost/MsDockerCertPath/MsDockerTlsVerify over the docker environment).</summary>
    private Settings.DockerEndpoint ResolveEndpoint() => Engine.DockerEngine.ResolveEndpoint(MsDockerHost, MsDockerCertPath, MsDockerTlsVerify);

    /// <summary>The engine of this build (MsDockerHost/MsDockerCertPath/MsDockerTlsVerify over the docker environment).</summary>
    protected async Task<Engine.DockerEngine> ConnectEngineAsync(CancellationToken cancellationToken)
    {
        var remote = MsDockerRemote.Trim().ToLowerInvariant() switch
        {
            "" or "auto" => (bool?)null,
            "true" => true,
            "false" => false,
            _ => throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("DockerRemoteInvalid", MsDockerRemote)),
        };
        var engine = await Engine.DockerEngine.ConnectAsync(ResolveEndpoint(), cancellationToken).ConfigureAwait(false);
        if (remote == true)
        {
            engine.AsRemote();
        }
        else if (remote == false && !engine.SharesHostFileSystem)
        {
            engine.Dispose();
            throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("DockerRemoteInvalid", MsDockerRemote));
        }
        return engine;
    }

    protected void LogCoded(ImageBuildException e) =>
        Log.LogError(null, e.Code, e.Code, e.File, 0, 0, 0, 0, "{0}", e.Message);

    protected void LogCodedWarning(string code, string message, string? file = null) =>
        Log.LogWarning(null, code, code, file, 0, 0, 0, 0, "{0}", message);

    /// <summary>Where the effective stage scripts are in a stage container (the seed's path).</summary>
    protected const string BootstrapScriptsInContainer = "/docker/injected_volumes/bootstrap_scripts";

    /// <summary>
    /// The environment of the stage scripts: every MS_* setting, then MsDockerArgs' -e values. Given to the scripts
    /// (exec or env(1)), never as the container's Env, which docker commit would bake into the image.
    /// </summary>
    protected IList<string> StageEnvironmentList() =>
        [.. StageEnvironment.Select(i => $"{i.ItemSpec}={i.GetMetadata("Value")}"), .. Settings.DockerRunArguments.Parse(MsDockerArgs).Environment];

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
    /// docker commit merges the container's labels into the image: the per-build ones and MsDockerArgs' are blanked so
    /// they do not mark every container later run from the image.
    /// </summary>
    protected Dictionary<string, string> ImageLabels(Dictionary<string, string> labels)
    {
        foreach (var name in new[] { Engine.BuildLabels.BuildId, Engine.BuildLabels.OwnerPid, Engine.BuildLabels.OwnerHost, Engine.BuildLabels.OwnerProcess, Engine.BuildLabels.Stage }
                     .Concat(Settings.DockerRunArguments.Parse(MsDockerArgs).Labels.Keys))
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
    /// What every stage container gets besides its own spec: the MsDockerArgs flags and the data dir read-only inside
    /// the /run tmpfs (never committed): a bind mount on a local engine, this build's uploaded volume on a remote one.
    /// </summary>
    protected async Task<Docker.DotNet.Models.CreateContainerParameters> WithStageOptionsAsync(Docker.DotNet.Models.CreateContainerParameters container,
        Engine.DockerEngine engine, string? dataDirectory, string image, IReadOnlyCollection<string> excludedDataNames, CancellationToken cancellationToken)
    {
        Settings.DockerRunArguments.Parse(MsDockerArgs).ApplyTo(container);
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
            host.Mounts = [.. host.Mounts ?? [], new Docker.DotNet.Models.Mount { Type = "bind", Source = dataDirectory.TrimEnd('/'), Target = DataMountInContainer, ReadOnly = true }];
        }
        else
        {
            // Guarded before it exists: Ctrl+C during the upload (the long part) must not leave it behind.
            GuardDataVolume();
            var volume = await Engine.DataVolume.EnsureAsync(engine, BuildId, dataDirectory, excludedDataNames, container.Image, StageContainerLabels("data", image),
                message => Log.LogMessage(MessageImportance.High, "{0}", message), cancellationToken).ConfigureAwait(false);
            host.Mounts = [.. host.Mounts ?? [], new Docker.DotNet.Models.Mount { Type = "volume", Source = volume, Target = DataMountInContainer, ReadOnly = true }];
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
        }
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


    private string FreshBaseKey => $"MakinaStates.Image.Sdk.FreshBase/{BuildId}";

    /// <summary>A fresh base whose tarball is still being written: Stage3 finishes it, else MSBuild at the build's end.</summary>
    protected void HoldFreshBase(Engine.BaseTarballInProgress fresh) =>
        BuildEngine4.RegisterTaskObject(FreshBaseKey, fresh, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);

    /// <summary>
    /// Waits for the fresh base's tarball (compressed while the stages ran) and tags its import for the next builds.
    /// The image does not depend on it: a failure is a warning, and the next build makes the base again.
    /// </summary>
    protected async System.Threading.Tasks.Task FinishFreshBaseAsync(Engine.DockerEngine engine, string stage, CancellationToken cancellationToken)
    {
        if (BuildEngine4.UnregisterTaskObject(FreshBaseKey, RegisteredTaskObjectLifetime.Build) is not Engine.BaseTarballInProgress fresh)
        {
            return;
        }
        using (fresh)
        {
            try
            {
                await fresh.FinishAsync(engine, message => Log.LogMessage(MessageImportance.High, "{0}: {1}", stage, message), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogCodedWarning(MsiCodes.BaseTarballNotWritten, MsiMessages.Format("BaseTarballNotWritten", fresh.TarballPath, e.Message.TrimEnd('.')), fresh.TarballPath);
            }
        }
    }

    /// <summary>Cleanup must run even when the build was cancelled, so it gets its own bounded token.</summary>
    protected static CancellationToken CleanupToken() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;
}
