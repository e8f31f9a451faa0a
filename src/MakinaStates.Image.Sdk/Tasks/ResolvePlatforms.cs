using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// The platforms of a build, before anything else runs: MsPlatforms (several: one build each) or MsPlatform (one; none
/// is the engine's own, known only once Stage0 asks it). Every name is checked, and what can only work for one platform
/// (an explicit MsBaseImage: one tarball) is refused for several, so a bad list fails before any platform is built.
/// </summary>
public sealed class ResolvePlatforms : SettingsTask
{
    /// <summary>One item per platform (linux/arm64), with RuntimeIdentifier (linux-arm64) and Suffix (arm64).</summary>
    [Output] public ITaskItem[] Platforms { get; private set; } = [];

    /// <summary>More than one platform: the build runs once per platform.</summary>
    [Output] public bool Several { get; private set; }

    protected override System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var platforms = Build.RequestedPlatforms();
        if (platforms.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ImageBuildException(MsiCodes.PlatformsInvalid, MsiMessages.Format("PlatformListedTwice", twice.Key, Build.MsPlatforms));
        }
        Several = platforms.Count > 1;
        if (Several && !Build.HasDefaultBaseImage)
        {
            throw new ImageBuildException(MsiCodes.PlatformsInvalid, MsiMessages.Format("BaseImageWithPlatforms", Build.MsBaseImage, Build.MsPlatforms,
                Build.DefaultBaseImageName()));
        }
        Platforms = [.. platforms.Select(p =>
        {
            var item = new TaskItem(p.Name);
            item.SetMetadata("RuntimeIdentifier", p.RuntimeIdentifier);
            item.SetMetadata("Suffix", p.Suffix);
            return (ITaskItem)item;
        })];
        return System.Threading.Tasks.Task.CompletedTask;
    }
}
