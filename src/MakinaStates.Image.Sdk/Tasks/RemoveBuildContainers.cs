using MakinaStates.Image.Sdk.Engine;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>After a failed stage: removes every container (and the data volume) this build made, so nothing is left behind.</summary>
public sealed class RemoveBuildContainers : ImageBuildTask
{

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(BuildId))
        {
            return;
        }
        ReleaseImageLock();
        using var engine = await ConnectEngineAsync(CleanupToken()).ConfigureAwait(false);
        var removed = await engine.RemoveBuildContainersAsync(BuildId, CleanupToken()).ConfigureAwait(false);
        await DataVolume.RemoveAsync(engine, BuildId, CleanupToken()).ConfigureAwait(false);
        Log.LogMessage(MessageImportance.Normal, "Removed {0} container(s) of build {1}.", removed, BuildId);
    }
}
