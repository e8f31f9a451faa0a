using System.Text.RegularExpressions;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// After Stage3 (MsPush=true): the candidate goes to MsRegistry as :candidate, and the MsImageTags promote that same
/// image under their tags. Returns one MsPushedImage per reference, with the registry's manifest Digest.
/// </summary>
public sealed partial class PushToRegistry : ImageBuildTask
{

    /// <summary>MsImageTags items: more tags for the same image (1.2.3, latest).</summary>
    public ITaskItem[] Tags { get; set; } = [];

    /// <summary>Never logged; MS_REGISTRY_PASSWORD is read when this is empty.</summary>
    public string MsRegistryPassword { get; set; } = "";

    [Output] public ITaskItem[] PushedImages { get; private set; } = [];

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex TagGrammar();

    [GeneratedRegex(@"^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?$")]
    private static partial Regex RegistryGrammar();

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        try
        {
            PushedImages = [.. await PushAsync(cancellationToken).ConfigureAwait(false)];
        }
        finally
        {
            // Held since Stage0 so no other build of this image could retag between our tag and our push.
            ReleaseImageLock();
        }
    }

    private async Task<List<ITaskItem>> PushAsync(CancellationToken cancellationToken)
    {
        var image = Build.Image;
        var registry = string.IsNullOrWhiteSpace(Build.MsRegistry) ? image.Registry : Build.MsRegistry.Trim().TrimEnd('/');
        if (registry is null)
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("PushRegistryMissing", Build.MsImage));
        }
        if (!RegistryGrammar().IsMatch(registry))
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("PushRegistryInvalid", Build.MsRegistry));
        }
        // Every tag is checked before anything is pushed: a bad one never leaves a half-promoted set behind.
        // One platform of several goes under its own tag (candidate-arm64); the multi-platform index then takes
        // :candidate and the MsImageTags (PushImageIndex).
        var platformOfMany = Build.IsTrue(Build.MsPlatformOfMany);
        var tags = new List<string> { platformOfMany ? $"candidate-{Build.ResolvedPlatform.Suffix}" : ImageReference.SplitTag(Build.ImageCandidate).Tag };
        foreach (var tag in Tags.Select(t => t.ItemSpec.Trim()).Where(t => t.Length > 0))
        {
            if (!TagGrammar().IsMatch(tag))
            {
                throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("PushTagInvalid", tag));
            }
            if (!platformOfMany && !tags.Contains(tag, StringComparer.Ordinal))
            {
                tags.Add(tag);
            }
        }

        var credentials = RegistryCredentials.Resolve(registry, Build.MsRegistryUsername, MsRegistryPassword, Environment.GetEnvironmentVariable,
            Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));
        var pusher = credentials?.Describe() ?? "anonymous (no credentials for this registry)";
        var auth = credentials is null ? new AuthConfig()
            : new AuthConfig { Username = credentials.Username, Password = credentials.Password, IdentityToken = credentials.IdentityToken, ServerAddress = registry };

        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var candidate = await engine.TryInspectImageAsync(Build.ImageCandidate, cancellationToken).ConfigureAwait(false)
            ?? throw new ImageBuildException(MsiCodes.PushFailed, MsiMessages.Format("PushFailed", registry, Build.ImageCandidate, "the candidate is not on the engine"));
        var repository = $"{registry}/{image.PathInRegistry}";
        Log.LogMessage(MessageImportance.High, "Push: {0} ({1}) to {2} as {3}, pushed by {4}.", Build.ImageCandidate, candidate.ID[..19], registry,
            string.Join(", ", tags.Select(t => $"{repository}:{t}")), pusher);

        var pushed = new List<ITaskItem>();
        foreach (var tag in tags)
        {
            var reference = $"{repository}:{tag}";
            // The registry's names are tagged on the engine for the push only, then put back as they were (the registry
            // has them; a pull brings them back): old candidates are not kept alive by them.
            var before = reference == Build.ImageCandidate ? candidate.ID : (await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false))?.ID;
            await engine.Client.Images.TagImageAsync(candidate.ID, new ImageTagParameters { RepositoryName = repository, Tag = tag },
                cancellationToken).ConfigureAwait(false);
            try
            {
                using var report = TransferProgress.Every(elapsed => $"Push: {reference}… {elapsed.TotalSeconds:0} s",
                    message => Log.LogMessage(MessageImportance.High, "{0}", message));
                var digest = await RegistryPush.PushAsync(engine, registry, repository, tag, auth, pusher,
                    line => Log.LogMessage(MessageImportance.Low, "push {0}: {1}", reference, line), cancellationToken).ConfigureAwait(false);
                var item = new TaskItem(reference);
                item.SetMetadata("Digest", digest);
                item.SetMetadata("Registry", registry);
                item.SetMetadata("Repository", repository);
                item.SetMetadata("PathInRegistry", image.PathInRegistry);
                item.SetMetadata("Tag", tag);
                item.SetMetadata("ImageId", candidate.ID);
                item.SetMetadata("Platform", Build.Platform);
                pushed.Add(item);
                Log.LogMessage(MessageImportance.High, "Pushed {0}@{1}", reference, digest);
            }
            finally
            {
                // The name goes back to what it named before: nothing, another image (e.g. one pulled for a deploy),
                // or this one already.
                if (before is null)
                {
                    await engine.UntagAsync(reference).ConfigureAwait(false);
                }
                else if (before != candidate.ID)
                {
                    await engine.Client.Images.TagImageAsync(before, new ImageTagParameters { RepositoryName = repository, Tag = tag }, CleanupToken()).ConfigureAwait(false);
                }
            }
        }
        return pushed;
    }
}
