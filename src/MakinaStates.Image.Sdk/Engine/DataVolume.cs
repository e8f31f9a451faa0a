using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The data dir for an engine that does not share this machine's files (tcp, a context): a volume per build, filled
/// once by upload and mounted where a local engine gets the bind mount (writable in stage2 and stage3, as there; what is
/// written stays in the volume). Removed at the end of the build.
/// </summary>
public static class DataVolume
{
    private const string FillPath = "/makinastates-data";

    public static string Name(string buildId) => $"makinastates-data-{buildId}";

    /// <summary>
    /// What the SDK itself keeps in the data dir is not stage content: the locks, the base tarballs (imported by
    /// upload already) and half-written temporaries. Everything else is what the user put there for the stages.
    /// </summary>
    public static bool IsStageContent(string topLevelName) =>
        !(IsKeptBySdk(topLevelName)
          || topLevelName.StartsWith(".stage0.", StringComparison.Ordinal)
          || topLevelName.StartsWith(".write-probe-", StringComparison.Ordinal)
          || topLevelName.StartsWith(Tasks.ImageBuildTask.DataDirectoryMarkerPrefix, StringComparison.Ordinal)
          || topLevelName.EndsWith(".tmp", StringComparison.Ordinal));

    /// <summary>
    /// What the SDK keeps in the data dir for later builds: the locks and the base tarballs (with their import records).
    /// The rest of what it writes there is transient (a temporary, a probe, a marker): it comes and goes during a build.
    /// </summary>
    public static bool IsKeptBySdk(string topLevelName) =>
        topLevelName == "locks" || topLevelName.StartsWith("baseimage-", StringComparison.Ordinal);

    /// <summary>Creates and fills this build's volume unless an earlier stage already did; returns its name.</summary>
    /// <param name="helperImage">An image the engine has: a never-started container of it receives the upload.</param>
    /// <param name="excludedNames">More top-level names that are not stage content (a base tarball with a custom name).</param>
    public static async Task<string> EnsureAsync(DockerEngine engine, string buildId, string dataDirectory, IReadOnlyCollection<string> excludedNames,
        string helperImage, IDictionary<string, string> labels, Action<string> log, CancellationToken cancellationToken)
    {
        var name = Name(buildId);
        var existing = await engine.Client.Volumes.ListAsync(new VolumesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["name"] = new Dictionary<string, bool> { [name] = true } },
        }, cancellationToken).ConfigureAwait(false);
        if (existing.Volumes?.Any(v => v.Name == name) == true)
        {
            return name;
        }

        await engine.Client.Volumes.CreateAsync(new VolumesCreateParameters { Name = name, Labels = labels }, cancellationToken).ConfigureAwait(false);
        var excluded = Directory.EnumerateFileSystemEntries(dataDirectory).Select(Path.GetFileName).OfType<string>().Where(n => !IsStageContent(n) || excludedNames.Contains(n)).ToList();
        var tree = InjectedTree.Collect([new InjectedTree.Source(dataDirectory, FillPath + "/", excluded)]);
        // The archive API mounts a container's volumes even when it is not running: upload into the volume through
        // a container that is never started (a read-only mount would refuse the upload).
        var helper = await engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = helperImage,
            Cmd = ["/bin/true"],
            Labels = labels,
            HostConfig = new HostConfig { Mounts = [new Mount { Type = "volume", Source = name, Target = FillPath }] },
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            await ArchiveUpload.UploadAsync(engine, helper.ID, tree, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await engine.RemoveContainerAsync(helper.ID, CancellationToken.None).ConfigureAwait(false);
        }
        log($"the engine at {engine.Endpoint.Display} is not on this machine: the data dir ({tree.Nodes.Count - 1} entries) was uploaded to volume {name}.");
        return name;
    }

    /// <summary>Removes this build's volume; one already gone (or never made, on a local engine) is fine.</summary>
    public static Task RemoveAsync(DockerEngine engine, string buildId, CancellationToken cancellationToken) =>
        TryRemoveAsync(engine, Name(buildId), cancellationToken);

    /// <returns>false when the volume was already gone or is still in use (a container of a build not yet reaped).</returns>
    public static async Task<bool> TryRemoveAsync(DockerEngine engine, string name, CancellationToken cancellationToken)
    {
        try
        {
            await engine.Client.Volumes.RemoveAsync(name, force: true, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (DockerApiException e) when (e.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Conflict)
        {
            return false;
        }
    }
}
