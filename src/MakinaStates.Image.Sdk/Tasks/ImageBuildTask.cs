using Docker.DotNet;
using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Build.Framework;
using Task = Microsoft.Build.Utilities.Task;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Shared shape of the stage tasks: async work with cancellation (Ctrl+C reaches <see cref="Cancel"/>),
/// and every expected failure turned into one coded MSBuild error.
/// </summary>
public abstract partial class ImageBuildTask : Task, ICancelableTask
{
    private readonly CancellationTokenSource _cancellation = new();

    /// <summary>Build id shared by all stages of one build (Stage0 draws it into the description); labels every container it makes.</summary>
    protected string BuildId => Build.BuildId;

    /// <summary>obj/msimage/build.json: the build's settings and what Stage0 resolved (Stage0 writes it).</summary>
    public string BuildDescription { get; set; } = "";

    /// <summary>The build description, read once per task.</summary>
    protected Description Build => _build ??= DescribeBuild();
    private Description? _build;

    /// <summary>Reads the description Stage0 wrote; Stage0 itself (and Clean) make it from the settings.</summary>
    protected virtual Description DescribeBuild()
    {
        var build = Description.Load(BuildDescription);
        if (long.TryParse(SourceDateEpoch, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
        {
            build.SourceDateEpoch = new Settings.SourceDateEpoch(seconds, build.SourceDateEpoch?.Seconds is null ? "the base this build made" : build.SourceDateEpoch.Origin);
        }
        return build;
    }

    /// <summary>
    /// Stage2 and Stage3: the epoch Stage1 used (Unix seconds; empty: no clamping). Stage0's own, or, when Stage0 left it
    /// to a base that did not exist yet, the time of the base Stage1 made.
    /// </summary>
    public string SourceDateEpoch { get; set; } = "";

    /// <summary>MsPush=true: the image lock is held past the last stage, for the push; PushToRegistry releases it.</summary>
    protected bool KeepImageLock => Build.IsTrue(Build.MsPush);

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
        try
        {
            if (string.IsNullOrEmpty(BuildId))
            {
                return;
            }
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(8));
            using var engine = ConnectEngineAsync(bound.Token).GetAwaiter().GetResult();
            engine.RemoveBuildContainersAsync(BuildId, bound.Token).GetAwaiter().GetResult();
            Engine.DataVolume.RemoveAsync(engine, BuildId, bound.Token).GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            // Exiting: nothing can be reported any more; Stage0 of the next build reaps what is left.
        }
        if (OperatingSystem.IsLinux())
        {
            // Its containers are gone (through the tunnel): the tunnel goes too, its ssh with it.
            Engine.SshTunnel.CloseShared();
        }
        // The process is ending in the middle of a stage: it must not look like a success.
        Environment.ExitCode = 143;
    }

    protected abstract System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken);

    /// <summary>Where the engine of this build is (MsDockerHost/MsDockerCertPath/MsDockerTlsVerify over the docker environment).</summary>
    private Settings.DockerEndpoint ResolveEndpoint() => Build.ResolveEndpoint();

    /// <summary>The engine of this build, as its description says (endpoint and MsDockerRemote).</summary>
    protected Task<Engine.DockerEngine> ConnectEngineAsync(CancellationToken cancellationToken) =>
        ConnectEngineAsync(Engine.DockerEngine.ConnectAsync(ResolveEndpoint(), cancellationToken));

    /// <summary>The engine of this build at <paramref name="endpoint"/>, whose first call is <paramref name="firstCall"/>
    /// (see <see cref="Engine.DockerEngine.ConnectAsync(Settings.DockerEndpoint, Func{Docker.DotNet.DockerClient, CancellationToken, System.Threading.Tasks.Task}, CancellationToken)"/>).</summary>
    protected Task<Engine.DockerEngine> ConnectEngineAsync(Settings.DockerEndpoint endpoint, Func<Docker.DotNet.DockerClient, CancellationToken, System.Threading.Tasks.Task> firstCall,
        CancellationToken cancellationToken) =>
        ConnectEngineAsync(Engine.DockerEngine.ConnectAsync(endpoint, firstCall, cancellationToken));

    private async Task<Engine.DockerEngine> ConnectEngineAsync(Task<Engine.DockerEngine> connecting)
    {
        var remote = Build.Remote;
        var engine = await connecting.ConfigureAwait(false);
        if (engine.Endpoint.Ssh is not null)
        {
            HoldSshTunnels();
        }
        if (remote == true)
        {
            engine.AsRemote();
        }
        else if (remote == false && !engine.SharesHostFileSystem)
        {
            engine.Dispose();
            throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("DockerRemoteInvalid", Build.MsDockerRemote));
        }
        return engine;
    }

    protected void LogCoded(ImageBuildException e) =>
        Log.LogError(null, e.Code, e.Code, e.File, 0, 0, 0, 0, "{0}", e.Message);

    protected void LogCodedWarning(string code, string message, string? file = null) =>
        Log.LogWarning(null, code, code, file, 0, 0, 0, 0, "{0}", message);

}
