using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>`dotnet clean` with MsCleanImages=true: removes the project's candidate and stage1 images from the engine.</summary>
public sealed class RemoveImageProjectImages : SettingsTask
{

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var image = Build.Image;
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        // Every platform's: candidate and candidate-<arch>, the stage1 images (latest, and <arch> for emulated platforms).
        var stage1Repository = ImageReference.SplitTag(image.Stage1).Repository;
        var images = await engine.Client.Images.ListImagesAsync(new ImagesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{BuildLabels.Image}={Build.MsImage}"] = true } },
        }, cancellationToken).ConfigureAwait(false);
        var references = images.SelectMany(i => i.RepoTags ?? []).Where(reference => ImageReference.SplitTag(reference) is var (repository, tag)
            && ((repository == image.Repository && (tag == "candidate" || tag.StartsWith("candidate-", StringComparison.Ordinal))) || repository == stage1Repository))
            .Union([image.WithTag("candidate"), image.Stage1]).Distinct(StringComparer.Ordinal);
        foreach (var reference in references)
        {
            switch (await engine.RemoveImageIfPresentAsync(reference, cancellationToken).ConfigureAwait(false))
            {
                case ImageRemoval.Removed:
                    Log.LogMessage(MessageImportance.High, "Removed image {0}.", reference);
                    break;
                case ImageRemoval.InUse:
                    Log.LogMessage(MessageImportance.High, "Kept image {0}: a container uses it, or other images build on it.", reference);
                    break;
            }
        }
    }
}
