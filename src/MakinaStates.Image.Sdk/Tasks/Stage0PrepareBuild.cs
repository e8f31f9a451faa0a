using System.Globalization;
using System.Text;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage0: resolve and validate every setting, reach the engine, lay out the data and image directories,
/// put the effective stage scripts in place and print the seed's report of the settings.
/// </summary>
public sealed class Stage0PrepareBuild : SettingsTask
{
    // The settings, from the build description (MsResolveSettings); Stage0 resolves them and writes back what it decided.
    private string MsImage => Build.MsImage;
    private string MsBase => Build.MsBase;
    private string MsDataDir => Build.MsDataDir;
    private string MsImageDir => Build.MsImageDir;
    private string MsCommand => Build.MsCommand;
    private string MsOs => Build.MsOs;
    private string MsOsRelease => Build.MsOsRelease;
    private string MsOsMirror => Build.MsOsMirror;
    private string MsBaseImage => Build.MsBaseImage;
    private string MsStagePath => Build.MsStagePath;
    private string MsStage0Tag => Build.MsStage0Tag;
    private string MsDockerArgs => Build.MsDockerArgs;
    private string MsInit => Build.MsInit;
    private string MsMakinaStates => Build.MsMakinaStates;
    private string MsMakinaStatesBuildForce => Build.MsMakinaStatesBuildForce;
    private string MsExistingFolderMetadata => Build.MsExistingFolderMetadata;
    private bool ForceRebuild => Build.IsTrue(Build.MsForceRebuild);
    private bool RebuildBase => Build.IsTrue(Build.MsRebuildBase);

    [Required] public string SdkStageScriptsDirectory { get; set; } = "";

    /// <summary>The project's obj/ folder for the image build (content hash cache).</summary>
    public string IntermediateDirectory { get; set; } = "";


    /// <summary>The settings that shape the image beyond the tree and the scripts (name=value items).</summary>
    public ITaskItem[] ShapingSettings { get; set; } = [];

    /// <summary>Where the host's apt sources live (a test points it elsewhere).</summary>
    public string AptConfigurationDirectory { get; set; } = "/etc/apt";

    /// <summary>Where the description of this build was written, for the later stages (BuildDescription in, the same out).</summary>
    [Output] public string DescriptionFile { get; private set; } = "";

    [Output] public string ResolvedOsMirror { get; private set; } = "";

    /// <summary>systemd or none: what PID 1 of the build container is.</summary>
    [Output] public string ResolvedInit { get; private set; } = "";

    /// <summary>true or false: whether stage2.sh runs the makina-states step.</summary>
    [Output] public string ResolvedMakinaStates { get; private set; } = "";
    [Output] public string ResolvedBaseImagePath { get; private set; } = "";

    /// <summary>The base tarball's content hash (16 hex digits, from the hash cache): Stage1 finds its import by it without reading it again.</summary>
    [Output] public string BaseTarballHash { get; private set; } = "";
    [Output] public string ImageCandidate { get; private set; } = "";
    [Output] public string Stage1Name { get; private set; } = "";
    [Output] public string Stage2Name { get; private set; } = "";
    [Output] public string Stage1Image { get; private set; } = "";
    [Output] public string ResolvedStage0Tag { get; private set; } = "";
    [Output] public string NewBuildId { get; private set; } = "";
    [Output] public string BootstrapScriptsDirectory { get; private set; } = "";
    [Output] public ITaskItem[] StageScripts { get; private set; } = [];
    [Output] public string InputsKey { get; private set; } = "";
    [Output] public bool UpToDate { get; private set; }
    [Output] public ITaskItem? UpToDateCandidate { get; private set; }

    /// <summary>A corpus project's HEAD commit (deployed as /srv/projects/app/project), else empty.</summary>
    [Output] public string CorpusCommit { get; private set; } = "";

    private readonly StepTimes _steps = new();

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var image = ImageReference.Parse(MsImage, "MsImage");
        if (ShellWords.Split(MsCommand).Count == 0)
        {
            throw new ImageBuildException(MsiCodes.CommandEmpty, MsiMessages.Format("CommandEmpty"));
        }

        ResolvedInit = InitSystem.Resolve(MsInit, MsCommand);
        ExistingFolderMetadata.Parse(MsExistingFolderMetadata);
        var makinaStates = MakinaStatesStep.Resolve(MsMakinaStates, MsMakinaStatesBuildForce,
            new StageScriptResolver(MsImageDir, MsStagePath, SdkStageScriptsDirectory).IsCorpusProject, image, MsOs, MsOsRelease);
        ResolvedMakinaStates = makinaStates.Runs ? "true" : "false";
        DockerRunArguments.Parse(MsDockerArgs);
        BuildSecrets.Resolve(Secrets);
        ImageConfiguration.ExposedPorts(Ports);
        ImageConfiguration.Volumes(Volumes);

        // One platform per build: a multi-platform build runs one build per platform (MsPlatform set, MsPlatforms empty).
        var requestedPlatform = Build.RequestedPlatforms() switch
        {
            [] => null,
            [var one] => one,
            _ => throw new ImageBuildException(MsiCodes.PlatformsInvalid, MsiMessages.Format("PlatformsNotExpanded", Build.MsPlatforms)),
        };
        ResolvedStage0Tag = string.IsNullOrWhiteSpace(MsStage0Tag) ? $"{image.Repository}-stage0:latest" : MsStage0Tag.Trim();
        NewBuildId = Guid.NewGuid().ToString("N");
        var stem = image.Repository.Replace('/', '-').Replace(':', '-');
        Stage1Name = $"{stem}-stage1-{NewBuildId[..12]}";
        Stage2Name = $"{stem}-stage2-{NewBuildId[..12]}";
        var isScratch = string.Equals(MsBase, "scratch", StringComparison.Ordinal);
        ResolvedOsMirror = !string.IsNullOrWhiteSpace(MsOsMirror) ? MsOsMirror.Trim() : AptMirrorDiscovery.FindMirror(MsOsRelease, AptConfigurationDirectory, MsOs) ?? "";
        if (requestedPlatform is null)
        {
            // The engine's own platform: its tarball is known now, before anything is locked (else checked once the engine answers).
            ThrowIfMirrorMissing(isScratch, BaseImagePath(null));
        }

        // The injected tree is checked before anything is created: missing paths, bad TargetPaths, unreadable files.
        var collecting = System.Diagnostics.Stopwatch.StartNew();
        var tree = InjectedTree.Collect(InjectedTree.ImageSources(MsImageDir, InjectedVolumes));
        foreach (var skipped in tree.Skipped)
        {
            LogCodedWarning(MsiCodes.SpecialFileSkipped, MsiMessages.Format("SpecialFileSkipped", skipped), skipped);
        }
        Log.LogMessage(MessageImportance.Normal, "Injected tree: {0} entries, checked in {1} ms.", tree.Nodes.Count, collecting.ElapsedMilliseconds);
        _steps.Mark("settings and tree");

        PrepareDirectories();
        // One build of an image at a time: the stage1 tag and the candidate are shared by all of its builds.
        BuildId = NewBuildId;
        HoldImageLock(await Concurrency.DataDirectoryLock.AcquireAsync(MsDataDir, $"image-{image.Repository}", $"image {image.Repository}",
            message => Log.LogMessage(MessageImportance.High, "Stage0: {0}", message), cancellationToken).ConfigureAwait(false));
        try
        {
            await PrepareWithImageLockAsync(image, tree, requestedPlatform, isScratch, makinaStates, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            ReleaseImageLock();
            throw;
        }
    }

    /// <summary>After the image lock: a failure here must not keep it (another build of the image would wait for this
    /// whole build to end).</summary>
    private async System.Threading.Tasks.Task PrepareWithImageLockAsync(ImageReference image, InjectedTree tree, ImagePlatform? requestedPlatform, bool isScratch,
        MakinaStatesStep.Decision makinaStates, CancellationToken cancellationToken)
    {
        Log.LogMessage(MessageImportance.High, "makina-states step: {0} ({1}).", makinaStates.Runs ? "on" : "off", makinaStates.Reason);
        if (ResolvedInit == InitSystem.None)
        {
            Log.LogMessage(MessageImportance.High, "MsInit: none: the build container runs no init; '{0}' is the image's command.", MsCommand);
        }
        _steps.Mark("image lock");
        var resolver = new StageScriptResolver(MsImageDir, MsStagePath, SdkStageScriptsDirectory);
        var scripts = resolver.ResolveAll();
        foreach (var script in scripts.Where(s => s.Name.StartsWith("stage", StringComparison.Ordinal)))
        {
            Log.LogMessage(MessageImportance.Normal, "{0}: using {1} from {2}", script.Name, script.Path, script.Origin);
        }
        if (resolver.IsCorpusProject)
        {
            CorpusCommit = CorpusProject.HeadCommit(MsImageDir);
            Log.LogMessage(MessageImportance.High, "Corpus project: deploying commit {0} as {1}.", CorpusCommit, CorpusProject.DeployPath);
            var uncommitted = CorpusProject.UncommittedChanges(MsImageDir);
            if (uncommitted.Count > 0)
            {
                LogCodedWarning(MsiCodes.CorpusUncommitted,
                    MsiMessages.Format("CorpusUncommitted", uncommitted.Count, MsImageDir, CorpusCommit[..12], string.Join(", ", uncommitted.Take(5))), MsImageDir);
            }
        }
        var placed = resolver.PlaceEffectiveScripts(scripts);
        foreach (var (source, copy) in scripts.Zip(placed).Where(pair => pair.Second.Normalized))
        {
            LogCodedWarning(MsiCodes.ScriptLineEndings, MsiMessages.Format("ScriptLineEndings", source.Name, source.Path), source.Path);
        }
        BootstrapScriptsDirectory = resolver.BootstrapScriptsDirectory;
        StageScripts = placed.Select(s =>
        {
            var item = new Microsoft.Build.Utilities.TaskItem(s.Path);
            item.SetMetadata("ScriptName", s.Name);
            item.SetMetadata("Origin", s.Origin);
            return (ITaskItem)item;
        }).ToArray();

        _steps.Mark("scripts");
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var identity = await engine.IdentityAsync(cancellationToken).ConfigureAwait(false);
        Log.LogMessage(MessageImportance.High, "Engine: {0}; {1}{2}.", engine.Endpoint.Describe(), identity.Describe(),
            engine.SharesHostFileSystem ? "" : "; not on this machine, so the data dir and the injected tree are uploaded");
        identity.ThrowIfRootlessWithoutCgroup();
        foreach (var reaped in await BuildOwnership.ReapOrphansAsync(engine, cancellationToken).ConfigureAwait(false))
        {
            Log.LogMessage(MessageImportance.High, "Removed {0}, left by a build whose process is gone.", reaped);
        }

        var baseImagePath = ResolvePlatform(image, identity, requestedPlatform, engine.SharesHostFileSystem);
        ThrowIfMirrorMissing(isScratch, baseImagePath);
        _steps.Mark("engine");
        await CheckUpToDateAsync(engine, tree, baseImagePath, isScratch, cancellationToken).ConfigureAwait(false);
        _steps.Mark("inputs key");
        Log.LogMessage(MessageImportance.Normal, "Stage0 steps: {0}", _steps);

        // What this build decided, for the later stages: they read the description, not the properties.
        var build = Build;
        build.BuildId = NewBuildId;
        build.MsOsMirror = ResolvedOsMirror;
        build.MsInit = ResolvedInit;
        build.MsMakinaStates = ResolvedMakinaStates;
        build.MsStage0Tag = ResolvedStage0Tag;
        build.ImageCandidate = ImageCandidate;
        build.Stage1Name = Stage1Name;
        build.Stage2Name = Stage2Name;
        build.Stage1Image = Stage1Image;
        build.BaseImagePath = baseImagePath;
        build.BaseTarballHash = BaseTarballHash;
        build.BootstrapScriptsDirectory = BootstrapScriptsDirectory;
        build.CorpusCommit = CorpusCommit;
        build.InputsKey = InputsKey;
        build.InputsKeyText = _keyText;
        build.InputsKeyBase = _keyBase;
        build.IntermediateDirectory = IntermediateDirectory;
        build.Platform = _platform!.Name;
        build.PlatformEmulated = _emulated;
        if (Build.HasDefaultBaseImage)
        {
            // The scripts' MS_BASEIMAGE is the platform's tarball.
            build.MsBaseImage = Path.GetFileName(baseImagePath);
        }
        build.Save(BuildDescription);
        DescriptionFile = BuildDescription;

        // The seed's report of the effective settings (the -e values of MsDockerArgs masked: they may be secrets).
        Log.LogMessage(MessageImportance.High, "MakinaStates image build {0}", NewBuildId);
        foreach (var (name, value) in build.SeedSettings())
        {
            var shown = name switch
            {
                "MS_OS_MIRROR" when value.Length == 0 => "(none found; not needed while the base exists)",
                "MS_BASEIMAGE" => baseImagePath,
                "MS_DOCKER_ARGS" => System.Text.RegularExpressions.Regex.Replace(value, @"((?:-e|--env)(?:=|\s+)['""]?[^=\s'""]+)=\S+", "$1=***"),
                _ => value,
            };
            Log.LogMessage(MessageImportance.Normal, "  {0,-20} {1}", name, shown);
        }
        Log.LogMessage(MessageImportance.Normal, "  {0,-20} {1}", "DOCKER_HOST", engine.Endpoint.Display);
    }

    private ImagePlatform? _platform;
    private string _keyText = "";
    private string _keyBase = "";
    private bool _emulated;

    private string BaseImagePath(string? suffix)
    {
        // The default name (as Sdk.targets sets it) gets the platform; a name the user chose is used as it is.
        var name = Build.HasDefaultBaseImage ? Build.DefaultBaseImageName(suffix) : MsBaseImage;
        return Path.IsPathRooted(name) ? name : Path.Combine(MsDataDir, name);
    }

    private void ThrowIfMirrorMissing(bool isScratch, string baseImagePath)
    {
        if (isScratch && !File.Exists(baseImagePath) && ResolvedOsMirror.Length == 0)
        {
            throw new ImageBuildException(MsiCodes.MirrorNotFound,
                MsiMessages.Format("MirrorNotFound", MsOsRelease, AptConfigurationDirectory, MsOs));
        }
    }

    /// <summary>
    /// The platform of this build (MsPlatform, or the engine's own) and the names that depend on it: a platform the engine
    /// does not run natively has its own base tarball and stage1 image, and, in a multi-platform build, its own candidate
    /// tag. Its emulation is checked here, before anything is made. Returns the base tarball's path.
    /// </summary>
    private string ResolvePlatform(ImageReference image, EngineIdentity identity, ImagePlatform? requested, bool localEngine)
    {
        var enginePlatform = identity.Platform;
        _platform = requested ?? enginePlatform ?? throw new ImageBuildException(MsiCodes.PlatformsInvalid,
            MsiMessages.Format("EnginePlatformUnknown", identity.Describe()));
        _emulated = enginePlatform is not null && !_platform.RunsNativelyOn(enginePlatform);
        var suffix = _emulated ? _platform.Suffix : null;
        ImageCandidate = image.WithTag(_emulated && Build.IsTrue(Build.MsPlatformOfMany) ? $"candidate-{suffix}" : "candidate");
        Stage1Image = suffix is null ? image.Stage1 : $"{ImageReference.SplitTag(image.Stage1).Repository}:{suffix}";
        var baseImagePath = BaseImagePath(suffix);
        ResolvedBaseImagePath = baseImagePath;
        if (_emulated)
        {
            Log.LogMessage(MessageImportance.High, "Platform: {0} on a {1} engine, under emulation: candidate {2}, base {3}.",
                _platform, enginePlatform, ImageCandidate, Path.GetFileName(baseImagePath));
            if (localEngine)
            {
                // The engine shares this host's kernel: its binfmt_misc says at once whether the platform can run.
                PlatformEmulation.ThrowUnlessHostEmulates(_platform);
            }
        }
        return baseImagePath;
    }

    /// <summary>
    /// The inputs key: base, SDK, effective scripts, the injected tree's content and the settings that shape the image.
    /// When the candidate carries the same key, nothing needs to run.
    /// </summary>
    private async System.Threading.Tasks.Task CheckUpToDateAsync(DockerEngine engine, InjectedTree tree, string baseImagePath, bool isScratch,
        CancellationToken cancellationToken)
    {
        var cache = ContentHashCache.Load(IntermediateDirectory.Length > 0 ? Path.Combine(IntermediateDirectory, "content-hashes.tsv") : null);
        var key = new StringBuilder();
        key.Append("sdk=").Append(typeof(Stage0PrepareBuild).Assembly.ManifestModule.ModuleVersionId).Append('\n');
        key.Append("platform=").Append(_platform!.Name).Append('\n');
        if (isScratch)
        {
            var baseHash = Mono.Unix.Native.Syscall.lstat(baseImagePath, out var stat) == 0 ? cache.HashOf(baseImagePath, stat) : "missing";
            BaseTarballHash = baseHash == "missing" ? "" : baseHash[..16];
            _keyBase = baseHash;
            key.Append(CandidateKey.Line(baseHash));
        }
        else
        {
            key.Append("base=").Append((await engine.TryInspectImageAsync(MsBase, cancellationToken).ConfigureAwait(false))?.ID ?? "missing").Append('\n');
        }
        // Every file sent to the stage containers, at any depth (helpers, lib/, data files beside the scripts).
        // stage0.sh and Dockerfile.stage0 shape only the base tarball, which is in the key by its content.
        foreach (var (name, file) in StageScriptResolver.Files(BootstrapScriptsDirectory))
        {
            if (name is not ("stage0.sh" or "Dockerfile.stage0"))
            {
                key.Append(name).Append('=').Append(StageScriptResolver.Hash(file)).Append('\n');
            }
        }
        foreach (var setting in ShapingSettings.OrderBy(i => i.ItemSpec, StringComparer.Ordinal))
        {
            key.Append(setting.ItemSpec).Append('=').Append(setting.GetMetadata("Value")).Append('\n');
        }
        var fingerprinting = System.Diagnostics.Stopwatch.StartNew();
        key.Append("tree=").Append(TreeFingerprint.Compute(tree, cache)).Append('\n');
        key.Append("corpus=").Append(CorpusCommit).Append('\n');
        Log.LogMessage(MessageImportance.Normal, "Injected tree fingerprint in {0} ms.", fingerprinting.ElapsedMilliseconds);
        cache.Save();
        _keyText = key.ToString();
        InputsKey = CandidateKey.Of(_keyText);

        if (ForceRebuild || RebuildBase || (isScratch && !File.Exists(baseImagePath)))
        {
            return;
        }
        var candidate = await engine.TryInspectImageAsync(ImageCandidate, cancellationToken).ConfigureAwait(false);
        if (candidate?.Config?.Labels is { } labels && labels.TryGetValue(BuildLabels.InputsKey, out var existing)
            && (existing == InputsKey || CandidateKey.IsAlias(IntermediateDirectory, candidate.ID, InputsKey)))
        {
            UpToDate = true;
            var item = new TaskItem(ImageCandidate);
            item.SetMetadata("ImageId", candidate.ID);
            item.SetMetadata("Size", candidate.Size.ToString(CultureInfo.InvariantCulture));
            item.SetMetadata("CommitId", CorpusCommit);
            item.SetMetadata("Platform", _platform.Name);
            UpToDateCandidate = item;
            if (!KeepImageLock)
            {
                ReleaseImageLock();
            }
            Log.LogMessage(MessageImportance.High, "{0} is up to date (inputs key {1}): no container started.", ImageCandidate, InputsKey[..12]);
        }
    }

    private void PrepareDirectories()
    {
        foreach (var directory in new[] { MsDataDir, MsImageDir, Path.Combine(MsImageDir, "injected_volumes", "bootstrap_scripts") })
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
        var probe = Path.Combine(MsDataDir, $".write-probe-{Environment.ProcessId}");
        try
        {
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            throw new ImageBuildException(MsiCodes.DataDirNotWritable, MsiMessages.Format("DataDirNotWritable_2", MsDataDir, e.Message), MsDataDir, e);
        }
    }
}
