using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>Stage0's names: the build id, the stage containers', the builder's, and those that depend on the platform.</summary>
public sealed partial class Stage0PrepareBuild
{
    /// <summary>The names known before the engine answers: the build id and its stage containers (the stage0 builder
    /// once the scripts are placed: <see cref="NameStage0Builder"/>).</summary>
    private void NameBuild()
    {
        var build = Build;
        var image = build.Image;
        build.BuildId = Guid.NewGuid().ToString("N");
        var stem = image.Repository.Replace('/', '-').Replace(':', '-');
        build.Stage1Name = $"{stem}-stage1-{build.BuildId[..12]}";
        build.Stage2Name = $"{stem}-stage2-{build.BuildId[..12]}";
        build.MsStage0Tag = build.MsStage0Tag.Trim();
    }

    /// <summary>
    /// The stage0 builder: MsStage0Tag, else the one every image project shares (<see cref="Stage0Builder.DefaultTag"/>),
    /// named after the effective Dockerfile.stage0, so known once the scripts are placed.
    /// </summary>
    private void NameStage0Builder()
    {
        var build = Build;
        if (build.MsStage0Tag.Length > 0)
        {
            return;
        }
        var dockerfile = Stage0Builder.Dockerfile(build.MsDockerfileStage0, build.BootstrapScriptsDirectory);
        if (!File.Exists(dockerfile))
        {
            throw new ImageBuildException(MsiCodes.StageScriptMissing, MsiMessages.Format("Stage0DockerfileMissing", dockerfile), dockerfile);
        }
        build.MsStage0Tag = Stage0Builder.DefaultTag(build.MsOs, build.MsOsRelease, dockerfile);
    }

    /// <summary>
    /// The platform of this build (MsPlatform, or the engine's own) and the names that depend on it: a platform the engine
    /// does not run natively has its own base tarball and stage1 image, and, in a multi-platform build, its own candidate
    /// tag. Its emulation is checked here, before anything is made.
    /// </summary>
    /// <param name="report">false on the no-op path, which may give way to the whole path (it names the platform again).</param>
    private void NamePlatform(EngineIdentity identity, ImagePlatform? requested, bool localEngine, bool report = true)
    {
        var build = Build;
        var enginePlatform = identity.Platform;
        var platform = requested ?? enginePlatform ?? throw new ImageBuildException(MsiCodes.PlatformsInvalid,
            MsiMessages.Format("EnginePlatformUnknown", identity.Describe()));
        var emulated = enginePlatform is not null && !platform.RunsNativelyOn(enginePlatform);
        var suffix = emulated ? platform.Suffix : null;
        build.Platform = platform.Name;
        build.PlatformEmulated = emulated;
        build.ImageCandidate = build.Image.WithTag(emulated && build.IsTrue(build.MsPlatformOfMany) ? $"candidate-{suffix}" : "candidate");
        build.Stage1Image = suffix is null ? build.Image.Stage1 : $"{ImageReference.SplitTag(build.Image.Stage1).Repository}:{suffix}";
        build.BaseImagePath = BaseImagePath(suffix);
        // Each platform's own, so a multi-platform build's are never mixed up.
        build.SbomPath = build.WritesSbom ? Path.Combine(build.IntermediateDirectory, build.IsTrue(build.MsPlatformOfMany) ? "" : platform.Suffix, "sbom.cdx.json") : "";
        if (build.HasDefaultBaseImage)
        {
            // The scripts' MS_BASEIMAGE is the platform's tarball.
            build.MsBaseImage = Path.GetFileName(build.BaseImagePath);
        }
        if (emulated && report)
        {
            Log.LogMessage(MessageImportance.High, "Platform: {0} on a {1} engine, under emulation: candidate {2}, base {3}.",
                platform, enginePlatform, build.ImageCandidate, Path.GetFileName(build.BaseImagePath));
        }
        if (emulated)
        {
            if (localEngine)
            {
                // The engine shares this host's kernel: its binfmt_misc says at once whether the platform can run.
                PlatformEmulation.ThrowUnlessHostEmulates(platform);
            }
        }
    }

    private string BaseImagePath(string? suffix)
    {
        // The default name (as Sdk.Settings.targets sets it) gets the platform; a name the user chose is used as it is.
        var name = Build.HasDefaultBaseImage ? Build.DefaultBaseImageName(suffix) : Build.MsBaseImage;
        return Path.IsPathRooted(name) ? name : Path.Combine(Build.MsDataDir, name);
    }
}
