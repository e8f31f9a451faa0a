using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Registry;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// After each platform's image was pushed under its own tag: one multi-platform image index under every tag, through
/// the registry's HTTP API (the engine cannot push an index). Needs no engine and no build description: the
/// per-platform manifests are found in the registry by the digests their pushes returned.
/// </summary>
public sealed partial class PushImageIndex : ImageBuildTask
{
    /// <summary>host[:port]</summary>
    [Required] public string Registry { get; set; } = "";

    /// <summary>The path in the registry: team/app.</summary>
    [Required] public string Repository { get; set; } = "";

    /// <summary>The tags the index is published under (candidate, 1.0, latest).</summary>
    [Required] public ITaskItem[] Tags { get; set; } = [];

    /// <summary>ItemSpec: the pushed per-platform reference; metadata Digest (sha256:…) and Platform (linux/arm64).</summary>
    [Required] public ITaskItem[] PlatformImages { get; set; } = [];

    public string MsRegistryUsername { get; set; } = "";

    /// <summary>Never logged; MS_REGISTRY_PASSWORD is read when this is empty.</summary>
    public string MsRegistryPassword { get; set; } = "";

    /// <summary>One per tag: &lt;registry&gt;/&lt;repo&gt;:&lt;tag&gt; with Digest, Registry, Repository, Tag, MediaType, Platforms.</summary>
    [Output] public ITaskItem[] PushedIndexes { get; private set; } = [];

    [GeneratedRegex("^sha256:[0-9a-f]{64}$")]
    private static partial Regex DigestGrammar();

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var registry = Registry.Trim().TrimEnd('/');
        var repository = Repository.Trim().Trim('/');
        var name = $"{registry}/{repository}";
        // Everything is checked before the registry is asked anything: bad input never leaves some tags moved.
        var tags = Tags.Select(t => t.ItemSpec.Trim()).Where(t => t.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        if (tags.Count == 0 || PlatformImages.Length == 0)
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("ImageIndexInputMissing", name, tags.Count, PlatformImages.Length));
        }
        foreach (var tag in tags)
        {
            RequireReference($"{name}:{tag}", registry, repository);
        }
        var wanted = PlatformImages.Select(item => ParsePlatformImage(item, name)).ToList();
        if (wanted.GroupBy(w => w.Platform.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("ImageIndexPlatformImageInvalid",
                twice.Last().Reference, $"{twice.Key} is given more than once", name));
        }

        var credentials = RegistryCredentials.Resolve(registry, MsRegistryUsername, MsRegistryPassword, Environment.GetEnvironmentVariable,
            Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));
        var pusher = credentials?.Describe() ?? "anonymous (no credentials for this registry)";
        var platforms = string.Join(", ", wanted.Select(w => w.Platform.Name));
        using var api = new RegistryApi(registry, repository, credentials);
        var reference = $"{name}:{tags[0]}";
        try
        {
            var entries = new List<ImageIndex.Entry>();
            foreach (var (item, digest, platform) in wanted)
            {
                var manifest = await api.HeadManifestAsync(digest, cancellationToken).ConfigureAwait(false)
                    ?? throw new ImageBuildException(MsiCodes.PushFailed, MsiMessages.Format("ImageIndexManifestMissing", registry, digest, name, platform.Name, item));
                if (manifest.MediaType is not (RegistryApi.DockerManifest or RegistryApi.OciManifest))
                {
                    throw new ImageBuildException(MsiCodes.PushFailed, MsiMessages.Format("ImageIndexPlatformImageInvalid", item,
                        $"{digest} is a {manifest.MediaType}, not an image manifest", name));
                }
                entries.Add(new ImageIndex.Entry(manifest with { Digest = digest }, platform));
            }
            var (mediaType, json) = ImageIndex.Create(entries);
            var expected = RegistryApi.DigestOf(json);
            Log.LogMessage(MessageImportance.Low, "Image index {0} ({1}, pushed by {2}):\n{3}", expected, mediaType, pusher, System.Text.Encoding.UTF8.GetString(json));

            var pushed = new List<ITaskItem>();
            foreach (var tag in tags)
            {
                reference = $"{name}:{tag}";
                var digest = await api.PutManifestAsync(tag, json, mediaType, cancellationToken).ConfigureAwait(false);
                if (digest != expected)
                {
                    throw new ImageBuildException(MsiCodes.PushFailed, MsiMessages.Format("ImageIndexPushFailed", registry, reference,
                        $"the registry stored it as {digest}, but its content's digest is {expected}"));
                }
                Log.LogMessage(MessageImportance.High, "Pushed {0}@{1} (image index: {2})", reference, digest, platforms);
                var output = new TaskItem(reference);
                output.SetMetadata("Digest", digest);
                output.SetMetadata("Registry", registry);
                output.SetMetadata("Repository", repository);
                output.SetMetadata("Tag", tag);
                output.SetMetadata("MediaType", mediaType);
                output.SetMetadata("Platforms", string.Join(";", wanted.Select(w => w.Platform.Name)));
                pushed.Add(output);
            }
            PushedIndexes = [.. pushed];
        }
        catch (RegistryApiException e)
        {
            throw e.Failure switch
            {
                RegistryFailure.Unreachable => new ImageBuildException(MsiCodes.RegistryUnreachable,
                    MsiMessages.Format("ImageIndexRegistryUnreachable", registry, reference, e.Message), inner: e),
                RegistryFailure.Unauthorized => new ImageBuildException(MsiCodes.RegistryUnauthorized,
                    MsiMessages.Format("ImageIndexUnauthorized", registry, reference, pusher, e.Message), inner: e),
                _ => new ImageBuildException(MsiCodes.PushFailed, MsiMessages.Format("ImageIndexPushFailed", registry, reference, e.Message), inner: e),
            };
        }
    }

    private static void RequireReference(string reference, string registry, string repository)
    {
        try
        {
            if (ImageReference.Parse(reference, "PushImageIndex").Registry == registry)
            {
                return;
            }
        }
        catch (ImageBuildException)
        {
        }
        throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("ImageIndexReferenceInvalid", reference, registry, repository));
    }

    private static (string Reference, string Digest, ImagePlatform Platform) ParsePlatformImage(ITaskItem item, string name)
    {
        var digest = item.GetMetadata("Digest").Trim();
        if (!DigestGrammar().IsMatch(digest))
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("ImageIndexPlatformImageInvalid", item.ItemSpec,
                digest.Length == 0 ? "it has no Digest" : $"its Digest '{digest}' is not sha256:<64 hex digits>", name));
        }
        ImagePlatform platform;
        try
        {
            platform = ImagePlatform.Parse(item.GetMetadata("Platform"), "Platform");
        }
        catch (ImageBuildException)
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("ImageIndexPlatformImageInvalid", item.ItemSpec,
                $"its Platform '{item.GetMetadata("Platform")}' is not one of {string.Join(", ", ImagePlatform.Supported)}", name));
        }
        // The registry accepts an index only of manifests in the index's own repository.
        if (ImageReference.SplitTag(item.ItemSpec.Split('@')[0]).Repository != name)
        {
            throw new ImageBuildException(MsiCodes.PushSettingsInvalid, MsiMessages.Format("ImageIndexPlatformImageInvalid", item.ItemSpec,
                "it was pushed to another repository", name));
        }
        return (item.ItemSpec, digest, platform);
    }
}
