using Docker.DotNet;
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
        var image = ImageReference.Parse(Build.MsImage, "MsImage");
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        foreach (var reference in new[] { image.WithTag("candidate"), image.Stage1 })
        {
            try
            {
                await engine.Client.Images.DeleteImageAsync(reference, new ImageDeleteParameters(), cancellationToken).ConfigureAwait(false);
                Log.LogMessage(MessageImportance.High, "Removed image {0}.", reference);
            }
            catch (DockerApiException e) when (DockerEngine.IsGone(e))
            {
            }
        }
    }
}
