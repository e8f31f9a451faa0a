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

    /// <summary>The MS_* settings as the seed passes them to its stage containers (item = name, Value = value).</summary>
    public ITaskItem[] StageEnvironment { get; set; } = [];

    public void Cancel() => _cancellation.Cancel();

    public sealed override bool Execute()
    {
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
            Log.LogError(null, MsiCodes.Cancelled, MsiCodes.Cancelled, null, 0, 0, 0, 0,
                "The image build was cancelled; its stage containers were removed.");
        }
        catch (DockerApiException e)
        {
            Log.LogError(null, MsiCodes.EngineRefused, MsiCodes.EngineRefused, null, 0, 0, 0, 0,
                "The Docker engine refused a request ({0}): {1}", (int)e.StatusCode, e.ResponseBody?.Trim());
        }
        return !Log.HasLoggedErrors;
    }

    protected abstract System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken);

    protected void LogCoded(ImageBuildException e) =>
        Log.LogError(null, e.Code, e.Code, e.File, 0, 0, 0, 0, "{0}", e.Message);

    protected void LogCodedWarning(string code, string message, string? file = null) =>
        Log.LogWarning(null, code, code, file, 0, 0, 0, 0, "{0}", message);

    protected IList<string> StageEnvironmentList() => StageEnvironment.Select(i => $"{i.ItemSpec}={i.GetMetadata("Value")}").ToList();

    /// <summary>Labels of a stage container: whose build it is, so failures and cancellations can find it.</summary>
    protected Dictionary<string, string> StageContainerLabels(string stage, string image) => new()
    {
        [Engine.BuildLabels.BuildId] = BuildId,
        [Engine.BuildLabels.OwnerPid] = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture),
        [Engine.BuildLabels.Image] = image,
        [Engine.BuildLabels.Stage] = stage,
    };

    /// <summary>Cleanup must run even when the build was cancelled, so it gets its own bounded token.</summary>
    protected static CancellationToken CleanupToken() => new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token;
}
