using System.Security.Cryptography;
using System.Text;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage1: get the base (the OS tarball made by stage0.sh and imported, or the MsBase image), then make the
/// stage1 image by running stage1.sh in it. The stage1 image is labelled with a key of everything that shaped it
/// and reused while that key holds.
/// </summary>
public sealed class Stage1BaseImage : ImageBuildTask
{
    // From the build description: the settings, and the names and hash Stage0 resolved.

    [Output] public string Stage1ImageId { get; private set; } = "";
    [Output] public bool Stage1Reused { get; private set; }

    /// <summary>
    /// The epoch (Unix seconds; empty: no clamping) of this build's layers: Stage0's, or, when Stage0 left it to a base
    /// that did not exist yet, the time of the base this task made or pulled.
    /// </summary>
    [Output] public string ResolvedSourceDateEpoch { get; private set; } = "";

    /// <summary>The time of the base this task made (its raw tar's or tarball's), for an epoch left to the base.</summary>
    private DateTimeOffset? _madeBaseTime;

    /// <summary>Where <see cref="_madeBaseTime"/> came from, for the epoch's report.</summary>
    private string _madeBaseTimeOrigin = "the time of the base this build made";

    private readonly StepTimes _steps = new();

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
        var baseReference = string.Equals(Build.MsBase, "scratch", StringComparison.Ordinal)
            ? await EnsureOsBaseAsync(engine, cancellationToken).ConfigureAwait(false)
            : Build.MsBase;
        var baseImage = await engine.TryInspectImageAsync(baseReference, cancellationToken).ConfigureAwait(false)
            ?? await PullBaseAsync(engine, cancellationToken).ConfigureAwait(false);

        _steps.Mark("base");
        var epoch = Build.SourceDateEpoch?.WithBase(_madeBaseTime ?? Settings.SourceDateEpoch.Utc(baseImage.Created),
            _madeBaseTime is null ? $"the base image's creation time ({baseReference})" : _madeBaseTimeOrigin);
        ResolvedSourceDateEpoch = epoch?.Seconds?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "";
        // stage1.sh sees it as SOURCE_DATE_EPOCH (the stage environment).
        Build.SourceDateEpoch = epoch;
        if (!ImageArchitecture.Matches(baseImage, Build.ResolvedPlatform))
        {
            throw new ImageBuildException(MsiCodes.BaseImageMissing, MsiMessages.Format("BasePlatformMismatch", baseReference,
                $"{baseImage.Os}/{baseImage.Architecture}{(baseImage.Variant is { Length: > 0 } v ? "/" + v : "")}", Build.ResolvedPlatform));
        }
        if (Build.PlatformEmulated && !engine.SharesHostFileSystem)
        {
            // A remote engine's host is not this one: a probe run of the base says whether it can run the platform.
            await PlatformEmulation.ThrowUnlessEngineRunsAsync(engine, baseImage.ID, Build.ResolvedPlatform, StageContainerLabels("probe", Build.MsImage),
                cancellationToken).ConfigureAwait(false);
            _steps.Mark("emulation probe");
        }
        var key = Stage1Key(baseImage.ID, epoch);
        var existing = await engine.TryInspectImageAsync(Build.Stage1Image, cancellationToken).ConfigureAwait(false);
        if (existing?.Config?.Labels is { } labels && labels.TryGetValue(BuildLabels.Stage1Key, out var existingKey) && existingKey == key)
        {
            Log.LogMessage(MessageImportance.High, "Stage1: {0} is up to date (key {1}), reused.", Build.Stage1Image, key[..12]);
            Stage1ImageId = existing.ID;
            Stage1Reused = true;
            return;
        }

        Log.LogMessage(MessageImportance.High, "Stage1: making {0} from {1}.", Build.Stage1Image, baseReference);
        var container = await CreateStageContainerAsync(engine, await WithStageOptionsAsync(new CreateContainerParameters
        {
            Image = baseImage.ID,
            Name = Build.Stage1Name,
            // A neutral command that waits: stage1.sh runs through exec, so neither the MS_* settings nor the -e values
            // of MsDockerArgs end up in the container's Env or Cmd, which commit bakes into the image (its history).
            Cmd = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"],
            Env = ["container=docker"],
            Labels = StageContainerLabels("stage1", Build.MsImage),
        }, engine, Build.MsDataDir, Build.MsImage, [Path.GetFileName(Build.BaseImagePath)], cancellationToken).ConfigureAwait(false), Build.MsDataDir, cancellationToken).ConfigureAwait(false);
        try
        {
            await ArchiveUpload.UploadAsync(engine, container.ID, BootstrapScriptsTree(), cancellationToken).ConfigureAwait(false);
            await engine.Client.Containers.StartContainerAsync(container.ID, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
            _steps.Mark("create and start");
            var result = await RunStageScriptAsync(engine, container.ID, "Stage1", "stage1.sh", "stage1",
                ["/bin/sh", "-c", $"{LinkDataDirectory} && exec /bin/bash {BootstrapScriptsInContainer}/stage1.sh"], cancellationToken).ConfigureAwait(false);
            if (result.ExitCode != 0)
            {
                throw ImageBuildException.ScriptFailed(MsiCodes.Stage1ScriptFailed, "Stage1ScriptFailed", result.ExitCode, result.LastLines,
                    Path.Combine(Build.BootstrapScriptsDirectory, "stage1.sh"));
            }
            _steps.Mark("stage1.sh");
            // /docker holds the build-time scripts only: it must not reach the committed image.
            await ContainerExec.RunAsync(engine.Client, container.ID, ["rm", "-rf", "/docker"], null, _ => { }, cancellationToken).ConfigureAwait(false);
            await engine.Client.Containers.StopContainerAsync(container.ID, new ContainerStopParameters { WaitBeforeKillSeconds = 10 }, cancellationToken).ConfigureAwait(false);
            _steps.Mark("stop");

            var commit = await engine.CommitUnderTemporaryTagAsync(new CommitContainerChangesParameters
            {
                ContainerID = container.ID,
                Cmd = ["/sbin/init"],
                StopSignal = SystemdContainerSpec.StopSignal,
                Labels = ImageLabels(new Dictionary<string, string> { [BuildLabels.Stage1Key] = key, [BuildLabels.Image] = Build.MsImage }),
            }, Build.Stage1Image, BuildId, cancellationToken, RewriteLayer(engine, epoch?.Time, "Stage1")).ConfigureAwait(false);
            Stage1ImageId = commit.ID;
            _steps.Mark("commit");
            Log.LogMessage(MessageImportance.Normal, "Stage1 steps: {0}", _steps);
        }
        finally
        {
            await engine.RemoveContainerAsync(container.ID, CleanupToken()).ConfigureAwait(false);
        }
    }

    private async Task<string> EnsureOsBaseAsync(DockerEngine engine, CancellationToken cancellationToken)
    {
        Action<string> log = message => Log.LogMessage(MessageImportance.High, "Stage1: {0}", message);
        var tarball = Build.BaseImagePath;
        // Image projects share the base: the first build makes it, the others wait and then reuse it.
        IDisposable? baseLock = await Concurrency.DataDirectoryLock.AcquireAsync(Build.MsDataDir, Path.GetFileName(tarball), $"the base tarball {tarball}",
            log, cancellationToken).ConfigureAwait(false);
        try
        {
            // A finisher an earlier build started may still write the tarball: it is complete or absent after this, and
            // what a dead finisher left (a partial tarball, its raw tar) is nobody's any more.
            await BaseTarballFinisher.WaitForRunningAsync(Build.MsDataDir, tarball, log, cancellationToken).ConfigureAwait(false);
            BaseTarballFinisher.RemoveStaleTemporaries(tarball);
            var orphans = BaseTarballFinisher.OrphanRaws(tarball);
            if (!File.Exists(tarball) || Build.RebuildsBase)
            {
                // stage0.sh leaves the uncompressed tar when the SDK can write the tarball itself: it is imported at once
                // and compressed beside the import and the stages that follow (by the finisher, beyond the build's end).
                string? raw;
                bool rawWritten;
                if (BaseTarball.CanWrite(tarball) && !Build.RebuildsBase && orphans.Count > 0)
                {
                    // A killed finisher (or a build killed before it handed the raw tar over): the raw tar is complete
                    // (stage0.sh renames it into place), so the tarball is finished from it, without a debootstrap.
                    raw = orphans[0];
                    rawWritten = true;
                    log($"finishing the base tarball {tarball} from the raw tar {raw} an interrupted build left.");
                    DeleteAll(orphans.Skip(1));
                }
                else
                {
                    DeleteAll(orphans);
                    raw = BaseTarball.CanWrite(tarball) ? BaseTarballFinisher.RawPath(tarball, BuildId) : null;
                    rawWritten = await CreateOsBaseAsync(engine, raw, cancellationToken).ConfigureAwait(false);
                }
                // The base's time: the tarball written from the raw tar keeps it (BaseTarball), so later builds read the same.
                _madeBaseTime = new DateTimeOffset(File.GetLastWriteTimeUtc(rawWritten ? raw! : tarball));
                _steps.Mark("stage0.sh");
                if (rawWritten)
                {
                    var importTag = BaseTarballFinisher.ImportTag(raw!);
                    if (await BaseTarballFinisher.TryStartAsync(raw!, tarball, Build.MsDataDir, log, cancellationToken).ConfigureAwait(false) is not null)
                    {
                        // The finisher owns the raw tar now; it stays until the tarball is renamed into place, so it can be
                        // imported meanwhile. The base lock is held until the import is made: a build that waited for it
                        // then finds the import of the raw tar under its tag (the tarball's origin names it).
                        HoldBaseHandedOver(new BaseHandedOver(tarball, importTag));
                        var imageId = await ImportOrReuseRawAsync(engine, raw!, importTag, log, cancellationToken).ConfigureAwait(false);
                        _steps.Mark("import raw");
                        return imageId;
                    }
                    var fresh = BaseTarballInProgress.Start(raw!, tarball, Build.MsOs, Build.MsOsRelease, importTag, baseLock, ConnectEngineAsync);
                    baseLock = null;
                    HoldFreshBase(fresh);
                    fresh.ImageId = await BaseImageImport.ImportRawAsync(engine, raw!, Build.MsOs, Build.MsOsRelease, fresh.TemporaryTag, Build.ResolvedPlatform,
                        log, cancellationToken).ConfigureAwait(false);
                    _steps.Mark("import raw");
                    return fresh.ImageId;
                }
            }
            else
            {
                // Killed between the rename and the raw tar's removal: the tarball is complete, its raw tar is not needed.
                DeleteAll(orphans);
                if (Build.BaseTarballHash.Length == 0)
                {
                    // Not there at Stage0 (another build's finisher wrote it meanwhile): the epoch left to the base is the
                    // tarball's time, as the next build reads it, so that this build's stage1 is the one that build reuses.
                    _madeBaseTime = new DateTimeOffset(File.GetLastWriteTimeUtc(tarball));
                    _madeBaseTimeOrigin = $"the base tarball's time ({Path.GetFileName(tarball)})";
                }
                Log.LogMessage(MessageImportance.Normal, "Stage1: reusing the base tarball {0} (delete it, or set MsRebuildBase=true, to redo).", tarball);
            }
            return await BaseImageImport.ImportTarballAsync(engine, tarball, Build.RebuildsBase || Build.BaseTarballHash.Length == 0 ? "" : BaseTarball.Tag(Build.BaseTarballHash), Build.MsOs, Build.MsOsRelease, Build.ResolvedPlatform,
                log, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            baseLock?.Dispose();
        }
    }

    private static void DeleteAll(IEnumerable<string> files)
    {
        foreach (var file in files)
        {
            File.Delete(file);
        }
    }

    /// <summary>The import of a raw tar under its build-private tag: the one an interrupted build made of it, or a new one.</summary>
    private async Task<string> ImportOrReuseRawAsync(DockerEngine engine, string raw, string importTag, Action<string> log, CancellationToken cancellationToken)
    {
        var reference = $"{BaseImageImport.Repository(Build.MsOs, Build.MsOsRelease)}:{importTag}";
        if (await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false) is not null)
        {
            log($"Base image {reference} already imported.");
            return await ImageArchitecture.EnsureAsync(engine, reference, Build.ResolvedPlatform, log, cancellationToken).ConfigureAwait(false);
        }
        return await BaseImageImport.ImportRawAsync(engine, raw, Build.MsOs, Build.MsOsRelease, importTag, Build.ResolvedPlatform, log, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs stage0.sh; true when it left the uncompressed tar at <paramref name="raw"/>, false when it wrote the tarball.</summary>
    private async Task<bool> CreateOsBaseAsync(DockerEngine engine, string? raw, CancellationToken cancellationToken)
    {
        var canRunOnHost = OperatingSystem.IsLinux() && Mono.Unix.Native.Syscall.geteuid() == 0
            && new[] { "/usr/sbin/debootstrap", "/usr/bin/debootstrap", "/sbin/debootstrap" }.Any(File.Exists);
        var inContainer = Build.MsBaseBuilder.ToLowerInvariant() switch
        {
            "container" => true,
            "host" when !canRunOnHost => throw new ImageBuildException(MsiCodes.BaseCannotBeCreated,
                MsiMessages.Format("BaseCannotBeCreated"), Build.BaseImagePath),
            "host" => false,
            _ => !canRunOnHost,
        };

        var script = Path.Combine(Build.BootstrapScriptsDirectory, "stage0.sh");
        if (!inContainer)
        {
            Log.LogMessage(MessageImportance.High, "Stage1: creating the base tarball {0} with stage0.sh on this host (debootstrap {1} {2}).", Build.BaseImagePath, Build.MsOs, Build.MsOsRelease);
            var hostEnvironment = StageEnvironmentList().Select(e => e.Split('=', 2)).ToDictionary(e => e[0], e => e.Length > 1 ? e[1] : "");
            // stage0.sh writes $MS_DATA_DIR/$MS_BASEIMAGE: give it the resolved place (MsBaseImage may be absolute).
            hostEnvironment["MS_DATA_DIR"] = Path.GetDirectoryName(Build.BaseImagePath)!;
            hostEnvironment["MS_BASEIMAGE"] = Path.GetFileName(Build.BaseImagePath);
            if (raw is not null)
            {
                hostEnvironment["MS_BASEIMAGE_RAW"] = raw;
            }
            int exitCode;
            IReadOnlyList<string> lastLines;
            using (var heartbeat = StageScriptHeartbeat("Stage1", "stage0.sh"))
            {
                (exitCode, lastLines) = await HostScriptRunner.RunAsync(script, hostEnvironment,
                    heartbeat.Observe(line => Log.LogMessage(MessageImportance.Normal, "stage0: {0}", line)), cancellationToken).ConfigureAwait(false);
            }
            if (exitCode == 0 && raw is not null && File.Exists(raw))
            {
                return true;
            }
            if (exitCode != 0 || !File.Exists(Build.BaseImagePath))
            {
                if (raw is not null)
                {
                    File.Delete(raw);
                }
                throw ImageBuildException.ScriptFailed(MsiCodes.BaseCreationFailed, "BaseCreationFailed_4", exitCode, lastLines, script);
            }
            return false;
        }

        Log.LogMessage(MessageImportance.High, "Stage1: creating the base tarball {0} with stage0.sh in the stage0 builder {1}.", Build.BaseImagePath, Build.MsStage0Tag);
        var dockerfile = Stage0Builder.Dockerfile(Build.MsDockerfileStage0, Build.BootstrapScriptsDirectory);
        string builder;
        try
        {
            builder = await Stage0Builder.EnsureImageAsync(engine, dockerfile, Build.MsStage0Tag, !string.IsNullOrWhiteSpace(Build.MsSkipStage0Build),
                message => Log.LogMessage(MessageImportance.Normal, "Stage1: {0}", message), cancellationToken).ConfigureAwait(false);
        }
        catch (ImageBuildException e) when (!canRunOnHost && e.Code is MsiCodes.Stage0BuilderFailed or MsiCodes.Stage0BuilderMissing)
        {
            // Not root (a rootless engine's user) and no builder either: say what would do instead.
            throw new ImageBuildException(MsiCodes.BaseCannotBeCreated, MsiMessages.Format("BaseNeedsTarballOrBuilder", Build.BaseImagePath, Build.MsStage0Tag, e.Message), Build.BaseImagePath, e);
        }
        // In the builder the data dir is container-local: the tarball is copied out through the archive API.
        const string output = "/docker/stage0-output";
        const string rawInBuilder = output + "/.stage0.raw.tar";
        var name = Path.GetFileName(Build.BaseImagePath);
        var environment = StageEnvironmentList().Where(e => !e.StartsWith("MS_DATA_DIR=", StringComparison.Ordinal) && !e.StartsWith("MS_BASEIMAGE=", StringComparison.Ordinal))
            .Concat(raw is null ? [] : [$"MS_BASEIMAGE_RAW={rawInBuilder}"]);
        var container = await WithStageOptionsAsync(new CreateContainerParameters
        {
            Image = builder,
            Name = Build.Stage1Name + "-stage0",
            Cmd = ["/usr/bin/env", .. environment, $"MS_DATA_DIR={output}", $"MS_BASEIMAGE={name}", "/bin/bash", $"{BootstrapScriptsInContainer}/stage0.sh"],
            Env = ["container=docker"],
            Labels = StageContainerLabels("stage0", Build.MsImage),
        }, engine, dataDirectory: null, Build.MsImage, [], cancellationToken).ConfigureAwait(false);
        using var builderHeartbeat = StageScriptHeartbeat("Stage1", "stage0.sh in the builder");
        (string, string)[] outputs = raw is null ? [($"{output}/{name}", Build.BaseImagePath)] : [(rawInBuilder, raw), ($"{output}/{name}", Build.BaseImagePath)];
        var copied = await Stage0Builder.RunAsync(engine, Build.MsStage0Tag, container, BootstrapScriptsTree(), outputs,
            builderHeartbeat.Observe(line => Log.LogMessage(MessageImportance.Normal, "stage0: {0}", line)), cancellationToken).ConfigureAwait(false);
        return raw is not null && copied == 0;
    }

    /// <summary>An MsBase that is not on the engine is pulled once; if that fails, the error names it.</summary>
    private async Task<ImageInspectResponse> PullBaseAsync(DockerEngine engine, CancellationToken cancellationToken)
    {
        var (repository, tag) = ImageReference.SplitTag(Build.MsBase);
        Log.LogMessage(MessageImportance.High, "Stage1: Build.MsBase {0} is not on the engine; pulling it.", Build.MsBase);
        string? error = null;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        try
        {
            await engine.Client.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = repository, Tag = tag, Platform = Build.ResolvedPlatform.Name }, null,
                new ImmediateProgress<JSONMessage>(m => error ??= m.Error?.Message), timeout.Token).ConfigureAwait(false);
        }
        catch (Docker.DotNet.DockerApiException e)
        {
            error = e.ResponseBody?.Trim() is { Length: > 0 } body ? body : e.Message;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            error = "the pull did not finish within 5 minutes";
        }
        return await engine.TryInspectImageAsync(Build.MsBase, cancellationToken).ConfigureAwait(false)
            ?? throw new ImageBuildException(MsiCodes.BaseImageMissing,
                MsiMessages.Format("BaseImageMissing", Build.MsBase, engine.Endpoint.Display, error ?? "no image"));
    }

    private string Stage1Key(string baseImageId, Settings.SourceDateEpoch? epoch)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // The SDK build is part of the key: how a stage1 container is run is the SDK's code, not only the scripts.
        var sdk = typeof(Stage1BaseImage).Assembly.ManifestModule.ModuleVersionId;
        hash.AppendData(Encoding.UTF8.GetBytes($"sdk={sdk}\nbase={baseImageId}\nos={Build.MsOs}\nrelease={Build.MsOsRelease}\n"));
        // How the layer was written: again (ACLs in, times clamped to the epoch) or as committed.
        hash.AppendData(Encoding.UTF8.GetBytes($"rewrite={Build.RewritesLayers}\nepoch={epoch?.KeyValue}\n"));
        // The placed files stage1.sh may use, as Stage0 chose them (StageScriptResolver.UsedByStage1): a helper of
        // stage1.sh (a lib/, a unit it installs) remakes it, a corpus project's pillar does not.
        var used = Build.Stage1Scripts.ToHashSet(StringComparer.Ordinal);
        foreach (var (name, file) in StageScriptResolver.Files(Build.BootstrapScriptsDirectory).Where(f => used.Contains(f.Name)))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{name}\n"));
            hash.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private InjectedTree BootstrapScriptsTree() =>
        InjectedTree.Collect([new InjectedTree.Source(Build.BootstrapScriptsDirectory, BootstrapScriptsInContainer + "/", [StageScriptResolver.GeneratedManifestName])]);
}
