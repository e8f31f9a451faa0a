using MakinaStates.Image.Sdk.Concurrency;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage0: check every setting, reach the engine, lay out the data and image directories, put the effective stage
/// scripts in place, name the build, compose its inputs key, and write all of it as the build description that the
/// later stages read. Its parts: the parameters (.Interface), the names (.Names), the key (.InputsKey), the seed's
/// report of the settings (.SettingsReport).
/// </summary>
public sealed partial class Stage0PrepareBuild : SettingsTask
{
    private readonly StepTimes _steps = new();

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var build = Build;
        ReportSeedLayout();
        var makinaStates = CheckSettings();
        // One platform per build: a multi-platform build runs one build per platform (MsPlatform set, MsPlatforms empty).
        var requestedPlatform = build.RequestedPlatforms() switch
        {
            [] => null,
            [var one] => one,
            _ => throw new ImageBuildException(MsiCodes.PlatformsInvalid, MsiMessages.Format("PlatformsNotExpanded", build.MsPlatforms)),
        };
        NameBuild();
        var isScratch = string.Equals(build.MsBase, "scratch", StringComparison.Ordinal);
        build.MsOsMirror = !string.IsNullOrWhiteSpace(build.MsOsMirror) ? build.MsOsMirror.Trim()
            : AptMirrorDiscovery.FindMirror(build.MsOsRelease, AptConfigurationDirectory, build.MsOs) ?? "";
        if (requestedPlatform is null)
        {
            // The engine's own platform: its tarball is known now, before anything is locked (else checked once the engine answers).
            ThrowIfMirrorMissing(isScratch, BaseImagePath(null));
        }

        // The injected tree is checked before anything is created: missing paths, bad TargetPaths, unreadable files.
        // It is collected here once: this tree is fingerprinted, and Stage2 sends this same tree.
        var collecting = System.Diagnostics.Stopwatch.StartNew();
        var tree = InjectedTree.Collect(InjectedTree.ImageSources(build.MsImageDir, InjectedVolumes));
        foreach (var skipped in tree.Skipped)
        {
            LogCodedWarning(MsiCodes.SpecialFileSkipped, MsiMessages.Format("SpecialFileSkipped", skipped), skipped);
        }
        Log.LogMessage(MessageImportance.Normal, "Injected tree: {0} entries, checked in {1} ms.", tree.Nodes.Count, collecting.ElapsedMilliseconds);
        _steps.Mark("settings and tree");

        PrepareDirectories();
        // One build of an image at a time: the stage1 tag and the candidate are shared by all of its builds.
        HoldImageLock(await Concurrency.DataDirectoryLock.AcquireAsync(build.MsDataDir, $"image-{build.Image.Repository}", $"image {build.Image.Repository}",
            message => Log.LogMessage(MessageImportance.High, "Stage0: {0}", message), cancellationToken).ConfigureAwait(false));
        try
        {
            await PrepareWithImageLockAsync(tree, requestedPlatform, isScratch, makinaStates, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            ReleaseImageLock();
            throw;
        }
        if (UpToDate && !KeepImageLock)
        {
            ReleaseImageLock();
        }
    }

    /// <summary>Every setting parsed and checked once, before anything is made; the resolved ones go into the description.</summary>
    private MakinaStatesStep.Decision CheckSettings()
    {
        var build = Build;
        var image = build.Image;
        if (ShellWords.Split(build.MsCommand).Count == 0)
        {
            throw new ImageBuildException(MsiCodes.CommandEmpty, MsiMessages.Format("CommandEmpty"));
        }
        build.MsInit = InitSystem.Resolve(build.MsInit, build.MsCommand);
        _ = build.ExistingFolderMetadataMode;
        var makinaStates = MakinaStatesStep.Resolve(build.MsMakinaStates, build.MsMakinaStatesBuildForce,
            new StageScriptResolver(build.MsImageDir, build.MsStagePath, SdkStageScriptsDirectory).IsCorpusProject, image, build.MsOs, build.MsOsRelease);
        build.MsMakinaStates = makinaStates.Runs ? "true" : "false";
        _ = build.DockerRunArguments;
        _ = build.BuildSecrets;
        _ = build.ExposedPorts;
        _ = build.ImageVolumes;
        _ = build.Remote;
        _ = build.RewritesLayers;
        _ = build.Archive;
        // What the setting names; left to the base, the base's time once the base is known (the up-to-date check).
        build.SourceDateEpoch = Sdk.Settings.SourceDateEpoch.Resolve(build.MsSourceDateEpoch, build.MsImageDir);
        return makinaStates;
    }

    /// <summary>After the image lock: a failure here must not keep it (another build of the image would wait for this
    /// whole build to end).</summary>
    private async System.Threading.Tasks.Task PrepareWithImageLockAsync(InjectedTree tree, ImagePlatform? requestedPlatform, bool isScratch,
        MakinaStatesStep.Decision makinaStates, CancellationToken cancellationToken)
    {
        var build = Build;
        Log.LogMessage(MessageImportance.High, "makina-states step: {0} ({1}).", makinaStates.Runs ? "on" : "off", makinaStates.Reason);
        if (build.MsInit == InitSystem.None)
        {
            Log.LogMessage(MessageImportance.High, "MsInit: none: the build container runs no init; '{0}' is the image's command.", build.MsCommand);
        }
        _steps.Mark("image lock");
        PlaceScripts();
        NameStage0Builder();
        _steps.Mark("scripts");
        build.IntermediateDirectory = IntermediateDirectory;

        if (await TryUpToDateAsLastSeenAsync(tree, requestedPlatform, isScratch, cancellationToken).ConfigureAwait(false) is { } lastSeen)
        {
            Describe(lastSeen);
            return;
        }

        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var identity = await engine.IdentityAsync(cancellationToken).ConfigureAwait(false);
        Log.LogMessage(MessageImportance.High, "Engine: {0}; {1}{2}.", engine.Endpoint.Describe(), identity.Describe(),
            engine.SharesHostFileSystem ? "" : "; not on this machine, so the data dir and the injected tree are uploaded");
        EngineIdentityCache.Save(IdentityCachePath, engine.Endpoint, identity);
        identity.ThrowIfRootlessWithoutCgroup();
        foreach (var reaped in await BuildOwnership.ReapOrphansAsync(engine, cancellationToken).ConfigureAwait(false))
        {
            Log.LogMessage(MessageImportance.High, "Removed {0}, left by a build whose process is gone.", reaped);
        }
        UnfinishedBuild.Clear(IntermediateDirectory);
        NamePlatform(identity, requestedPlatform, engine.SharesHostFileSystem);
        ThrowIfMirrorMissing(isScratch, build.BaseImagePath);
        _steps.Mark("engine");

        async System.Threading.Tasks.Task<ImageSummary?> InspectAsync(string reference) =>
            await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false) is { } image ? ImageSummary.From(image) : null;
        var key = await ComposeInputsKeyAsync(tree, isScratch, InspectAsync).ConfigureAwait(false);
        if (MayBeUpToDate(key))
        {
            JudgeCandidate(key, await InspectAsync(build.ImageCandidate).ConfigureAwait(false));
        }
        _steps.Mark("inputs key");
        if (!UpToDate)
        {
            HoldCollectedTree(tree);
            // Until Stage3 ends it: a build killed after this leaves it, and the next build, even one with nothing to
            // do, takes the whole path, which removes what the killed one left on the engine.
            UnfinishedBuild.Mark(IntermediateDirectory);
        }
        Describe(engine.Endpoint);
    }

    /// <summary>The description for the later stages (and MSBuild's output), the steps' times, the seed's report.</summary>
    private void Describe(DockerEndpoint endpoint)
    {
        Build.Save(BuildDescription);
        DescriptionFile = BuildDescription;
        _steps.Mark("description");
        Log.LogMessage(MessageImportance.Normal, "Stage0 steps: {0}", _steps);
        ReportSettings(endpoint);
    }

    private string IdentityCachePath => Path.Combine(IntermediateDirectory, EngineIdentityCache.FileName);

    /// <summary>
    /// The no-op path, with one engine call (two on an image base, whose tag may have moved): the engine as the last
    /// build read it (<see cref="EngineIdentityCache"/>), the key composed from it, and the candidate. A local socket is
    /// asked with the BCL alone (<see cref="LocalImageProbe"/>); another engine through the connection, whose first call
    /// stands for the ping. Returns the endpoint when the candidate carries the key; null when the build has work to do,
    /// or when this path cannot tell (no identity on record, a forced build, a build of the project that did not end,
    /// an answer it does not expect): the whole path then reads the identity afresh and composes the key again.
    /// </summary>
    private async System.Threading.Tasks.Task<DockerEndpoint?> TryUpToDateAsLastSeenAsync(InjectedTree tree, ImagePlatform? requestedPlatform, bool isScratch,
        CancellationToken cancellationToken)
    {
        var build = Build;
        if (build.IsTrue(build.MsForceRebuild) || build.IsTrue(build.MsRebuildBase) || UnfinishedBuild.WasLeft(IntermediateDirectory)
            || EngineIdentityCache.TryLoad(IdentityCachePath, build.ResolveEndpoint()) is not { } lastSeen)
        {
            return null;
        }
        var (endpoint, identity) = lastSeen;
        _steps.Mark("engine as last read");
        var local = endpoint.Ssh is null && endpoint.Address.Scheme == "unix" && build.Remote != true;
        NamePlatform(identity, requestedPlatform, local, report: false);
        if (isScratch && !File.Exists(build.BaseImagePath))
        {
            return null;
        }
        var onSocket = endpoint.Ssh is null && endpoint.Address.Scheme == "unix";
        DockerEngine? engine = null;
        try
        {
            // One call: the candidate, or on an image base the base (whose id is in the key), then the candidate.
            async System.Threading.Tasks.Task<ImageSummary?> InspectAsync(string reference)
            {
                if (onSocket)
                {
                    return (await LocalImageProbe.InspectAsync(endpoint.Address.LocalPath, reference, cancellationToken).ConfigureAwait(false)
                            ?? throw new OperationCanceledException("no answer the no-op path expects")).Image;
                }
                if (engine is not null)
                {
                    return await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false) is { } image ? ImageSummary.From(image) : null;
                }
                ImageSummary? first = null;
                // The connection's first call stands for the ping.
                engine = await ConnectEngineAsync(endpoint, async (client, token) =>
                    first = await DockerEngine.TryInspectImageAsync(client, reference, token).ConfigureAwait(false) is { } found ? ImageSummary.From(found) : null,
                    cancellationToken).ConfigureAwait(false);
                return first;
            }
            var key = await ComposeInputsKeyAsync(tree, isScratch, InspectAsync).ConfigureAwait(false);
            _steps.Mark("inputs key");
            // Inputs the last candidate was not built from: work to do, and the engine is not asked twice.
            if (!MayBeUpToDate(key) || !key.WasLastCandidate(IntermediateDirectory))
            {
                return null;
            }
            var candidate = await InspectAsync(build.ImageCandidate).ConfigureAwait(false);
            _steps.Mark("engine, one call");
            if (candidate is null || !key.IsCarriedBy(candidate, IntermediateDirectory))
            {
                return null;
            }
            Log.LogMessage(MessageImportance.High, "Engine: {0}; {1} (as the last build read it{2}).", endpoint.Describe(), identity.Describe(),
                local ? ": the same socket" : "");
            JudgeCandidate(key, candidate);
            return endpoint;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        finally
        {
            engine?.Dispose();
        }
    }

    /// <summary>The effective stage scripts (the project's over the SDK's) into injected_volumes/bootstrap_scripts/; a corpus project's commit.</summary>
    private void PlaceScripts()
    {
        var build = Build;
        var resolver = new StageScriptResolver(build.MsImageDir, build.MsStagePath, SdkStageScriptsDirectory);
        var scripts = resolver.ResolveAll();
        foreach (var script in scripts.Where(s => s.Name.StartsWith("stage", StringComparison.Ordinal)))
        {
            Log.LogMessage(MessageImportance.Normal, "{0}: using {1} from {2}", script.Name, script.Path, script.Origin);
        }
        var placed = resolver.PlaceEffectiveScripts(scripts);
        foreach (var (source, _) in scripts.Zip(placed).Where(pair => pair.Second.Normalized))
        {
            LogCodedWarning(MsiCodes.ScriptLineEndings, MsiMessages.Format("ScriptLineEndings", source.Name, source.Path), source.Path);
        }
        build.Stage1Scripts = [.. resolver.UsedByStage1(placed)];
        if (resolver.IsCorpusProject)
        {
            build.CorpusCommit = CorpusProject.HeadCommit(build.MsImageDir);
            Log.LogMessage(MessageImportance.High, "Corpus project: deploying commit {0} as {1}.", build.CorpusCommit, CorpusProject.DeployPath);
            var uncommitted = CorpusProject.UncommittedChanges(build.MsImageDir, WrittenByTheSdk(resolver));
            if (uncommitted.Count > 0)
            {
                LogCodedWarning(MsiCodes.CorpusUncommitted,
                    MsiMessages.Format("CorpusUncommitted", uncommitted.Count, build.MsImageDir, build.CorpusCommit[..12], string.Join(", ", uncommitted.Take(5))), build.MsImageDir);
            }
        }
        else if (resolver.HasSaltWithoutGit)
        {
            LogCodedWarning(MsiCodes.SaltWithoutGit, MsiMessages.Format("SaltWithoutGit", build.MsImageDir), Path.Combine(build.MsImageDir, ".salt"));
        }
        build.BootstrapScriptsDirectory = resolver.BootstrapScriptsDirectory;
    }

    /// <summary>What builds write into the image dir, so it is never an uncommitted change of a corpus project: the
    /// project's obj/ (this build's description, key cache and SBOM, restore's files), Stage0's copies of the scripts,
    /// and the data dir and the archive when they are inside it.</summary>
    private IEnumerable<string> WrittenByTheSdk(StageScriptResolver resolver) =>
        resolver.WrittenByStage0().Concat(new[]
        {
            BaseIntermediateDirectory, IntermediateDirectory, Path.TrimEndingDirectorySeparator(Build.MsDataDir) + Path.DirectorySeparatorChar, Build.MsArchiveOutputPath,
        }.Where(path => !string.IsNullOrWhiteSpace(path)));

    private void ThrowIfMirrorMissing(bool isScratch, string baseImagePath)
    {
        if (isScratch && !File.Exists(baseImagePath) && Build.MsOsMirror.Length == 0)
        {
            throw new ImageBuildException(MsiCodes.MirrorNotFound,
                MsiMessages.Format("MirrorNotFound", Build.MsOsRelease, AptConfigurationDirectory, Build.MsOs));
        }
    }

    private void PrepareDirectories()
    {
        var build = Build;
        foreach (var directory in new[] { build.MsDataDir, build.MsImageDir, Path.Combine(build.MsImageDir, "injected_volumes", "bootstrap_scripts") })
        {
            try
            {
                Directory.CreateDirectory(directory);
            }
            catch (Exception e) when (e is UnauthorizedAccessException or IOException)
            {
                throw new ImageBuildException(MsiCodes.DataDirNotWritable, MsiMessages.Format("DataDirNotWritable", directory, e.Message), directory, e);
            }
        }
        var probe = Path.Combine(build.MsDataDir, $".write-probe-{Environment.ProcessId}");
        try
        {
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ImageBuildException(MsiCodes.DataDirNotWritable, MsiMessages.Format("DataDirNotWritable_2", build.MsDataDir, e.Message), build.MsDataDir, e);
        }
    }
}
