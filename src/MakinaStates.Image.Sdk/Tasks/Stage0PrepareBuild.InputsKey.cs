using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>Stage0's up-to-date check: this build's inputs key (<see cref="Settings.InputsKey"/>) against the candidate's.</summary>
public sealed partial class Stage0PrepareBuild
{
    /// <summary>Changes with every build of the SDK: a new SDK may make another image of the same inputs.</summary>
    private static readonly string SdkIdentity = typeof(Stage0PrepareBuild).Assembly.ManifestModule.ModuleVersionId.ToString();

    /// <summary>
    /// Composes the key from the description as it now is (every setting resolved), the base, the scripts and the tree,
    /// and writes its text into the description. An image base is asked of <paramref name="inspect"/>.
    /// </summary>
    private async System.Threading.Tasks.Task<InputsKey> ComposeInputsKeyAsync(InjectedTree tree, bool isScratch,
        Func<string, System.Threading.Tasks.Task<ImageSummary?>> inspect)
    {
        var build = Build;
        var cache = ContentHashCache.Load(Path.Combine(IntermediateDirectory, ContentHashCache.FileName));
        string baseValue;
        if (isScratch)
        {
            baseValue = Mono.Unix.Native.Syscall.lstat(build.BaseImagePath, out var stat) == 0 ? cache.HashOf(build.BaseImagePath, stat) : InputsKey.MissingBase;
            build.BaseTarballHash = baseValue == InputsKey.MissingBase ? "" : baseValue;
            if (baseValue != InputsKey.MissingBase)
            {
                // The SDK gives a tarball it writes the time of the tree debootstrap made (see BaseTarball).
                build.SourceDateEpoch = build.SourceDateEpoch?.WithBase(DateTimeOffset.FromUnixTimeSeconds(stat.st_mtime),
                    $"the base tarball's time ({Path.GetFileName(build.BaseImagePath)})");
            }
        }
        else
        {
            var baseImage = await inspect(build.MsBase).ConfigureAwait(false);
            baseValue = baseImage?.Id ?? InputsKey.MissingBase;
            if (baseImage is not null)
            {
                build.SourceDateEpoch = build.SourceDateEpoch?.WithBase(Sdk.Settings.SourceDateEpoch.Utc(baseImage.Created),
                    $"the base image's creation time ({build.MsBase})");
            }
        }
        // Every file sent to the stage containers, at any depth (helpers, lib/, data files beside the scripts).
        // stage0.sh and Dockerfile.stage0 shape only the base tarball, which is in the key by its content.
        var scripts = StageScriptResolver.Files(build.BootstrapScriptsDirectory)
            .Where(f => f.Name is not ("stage0.sh" or "Dockerfile.stage0"))
            .Select(f => (f.Name, StageScriptResolver.Hash(f.Path)));
        var fingerprinting = System.Diagnostics.Stopwatch.StartNew();
        var key = InputsKey.Compose(build, SdkIdentity, baseValue, scripts, TreeFingerprint.Compute(tree.Nodes, cache));
        Log.LogMessage(MessageImportance.Normal, "Injected tree fingerprint in {0} ms; inputs key {1}.", fingerprinting.ElapsedMilliseconds, key.Value[..12]);
        cache.Save();
        build.InputsKeyText = key.Text;
        _baseMissing = baseValue == InputsKey.MissingBase;
        return key;
    }

    private bool _baseMissing;

    /// <summary>Whether a candidate could carry the key: not when the build is forced, or its base does not exist yet.</summary>
    private bool MayBeUpToDate(InputsKey key) => !(Build.IsTrue(Build.MsForceRebuild) || Build.IsTrue(Build.MsRebuildBase) || _baseMissing);

    /// <summary>When the candidate carries the key, the build is up to date.</summary>
    private void JudgeCandidate(InputsKey key, ImageSummary? candidate)
    {
        var build = Build;
        if (candidate is not null && key.IsCarriedBy(candidate, IntermediateDirectory))
        {
            UpToDate = true;
            Candidate = CandidateItem.Create(build, candidate.Id, candidate.Size);
            key.RecordAsLastCandidate(IntermediateDirectory);
            Log.LogMessage(MessageImportance.High, "{0} is up to date (inputs key {1}): no container started.", build.ImageCandidate, key.Value[..12]);
        }
    }
}
