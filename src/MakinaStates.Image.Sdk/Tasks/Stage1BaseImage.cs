using System.Security.Cryptography;
using System.Text;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Injection;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage1: get the base (the OS tarball made by stage0.sh and imported, or the MsBase image), then make the
/// stage1 image by running stage1.sh in it. The stage1 image is labelled with a key of everything that shaped it
/// and reused while that key holds.
/// </summary>
public sealed class Stage1BaseImage : ImageBuildTask
{
    [Required] public string MsImage { get; set; } = "";
    public string MsBase { get; set; } = "scratch";
    [Required] public string MsDataDir { get; set; } = "";
    public string MsOs { get; set; } = "debian";
    public string MsOsRelease { get; set; } = "bookworm";
    [Required] public string BaseImagePath { get; set; } = "";
    [Required] public string Stage1Image { get; set; } = "";
    [Required] public string Stage1Name { get; set; } = "";
    [Required] public string BootstrapScriptsDirectory { get; set; } = "";
    public string MsDockerHost { get; set; } = "";

    [Output] public string Stage1ImageId { get; private set; } = "";
    [Output] public bool Stage1Reused { get; private set; }

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        using var engine = await DockerEngine.ConnectAsync(MsDockerHost, cancellationToken).ConfigureAwait(false);
        var baseReference = string.Equals(MsBase, "scratch", StringComparison.Ordinal)
            ? await EnsureOsBaseAsync(engine, cancellationToken).ConfigureAwait(false)
            : MsBase;
        var baseImage = await engine.TryInspectImageAsync(baseReference, cancellationToken).ConfigureAwait(false)
            ?? throw new ImageBuildException(MsiCodes.BaseImageMissing,
                $"MsBase '{MsBase}' is not an image on the engine at {engine.Endpoint}. Load or build it first, or use MsBase=scratch to start from the OS base tarball.");

        var key = Stage1Key(baseImage.ID);
        var existing = await engine.TryInspectImageAsync(Stage1Image, cancellationToken).ConfigureAwait(false);
        if (existing?.Config?.Labels is { } labels && labels.TryGetValue(BuildLabels.Stage1Key, out var existingKey) && existingKey == key)
        {
            Log.LogMessage(MessageImportance.High, "Stage1: {0} is up to date (key {1}), reused.", Stage1Image, key[..12]);
            Stage1ImageId = existing.ID;
            Stage1Reused = true;
            return;
        }

        Log.LogMessage(MessageImportance.High, "Stage1: making {0} from {1}.", Stage1Image, baseReference);
        var container = await engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = baseImage.ID,
            Name = Stage1Name,
            // /docker holds the build-time scripts only: it must not reach the committed image. The MS_* settings
            // go through env(1), not the container's Env, which commit would bake into the image.
            Cmd = ["/usr/bin/env", .. StageEnvironmentList(), "/bin/sh", "-c", "/bin/bash /docker/bootstrap_scripts/stage1.sh; rc=$?; rm -rf /docker; exit $rc"],
            Env = ["container=docker"],
            Labels = StageContainerLabels("stage1", MsImage),
        }, cancellationToken).ConfigureAwait(false);
        string? temporaryReference = null;
        try
        {
            await ArchiveUpload.UploadAsync(engine, container.ID, BootstrapScriptsTree(), cancellationToken).ConfigureAwait(false);
            await engine.Client.Containers.StartContainerAsync(container.ID, new ContainerStartParameters(), cancellationToken).ConfigureAwait(false);
            var output = new Queue<string>();
            await engine.Client.Containers.GetContainerLogsAsync(container.ID,
                new ContainerLogsParameters { Follow = true, ShowStdout = true, ShowStderr = true },
                new Progress<string>(line =>
                {
                    lock (output)
                    {
                        Log.LogMessage(MessageImportance.Normal, "stage1: {0}", line.TrimEnd('\n', '\r'));
                        output.Enqueue(line.TrimEnd('\n', '\r'));
                        if (output.Count > 50) output.Dequeue();
                    }
                }), cancellationToken).ConfigureAwait(false);
            var exit = await engine.Client.Containers.WaitContainerAsync(container.ID, cancellationToken).ConfigureAwait(false);
            if (exit.StatusCode != 0)
            {
                string tail;
                lock (output) tail = string.Join(Environment.NewLine, output);
                throw new ImageBuildException(MsiCodes.Stage1ScriptFailed,
                    $"stage1.sh failed with exit code {exit.StatusCode}. Last lines:{Environment.NewLine}{tail}", Path.Combine(BootstrapScriptsDirectory, "stage1.sh"));
            }

            var (repository, tag) = SplitTag(Stage1Image);
            var temporaryTag = $"build-{BuildId}";
            temporaryReference = $"{repository}:{temporaryTag}";
            var commit = await engine.Client.Images.CommitContainerChangesAsync(new CommitContainerChangesParameters
            {
                ContainerID = container.ID,
                RepositoryName = repository,
                Tag = temporaryTag,
                Cmd = ["/sbin/init"],
                StopSignal = SystemdContainerSpec.StopSignal,
                Labels = new Dictionary<string, string>
                {
                    [BuildLabels.Stage1Key] = key,
                    [BuildLabels.Image] = MsImage,
                    // Commit merges the container's labels in: blank the per-build ones.
                    [BuildLabels.BuildId] = "",
                    [BuildLabels.OwnerPid] = "",
                    [BuildLabels.Stage] = "",
                },
            }, cancellationToken).ConfigureAwait(false);
            await engine.Client.Images.TagImageAsync(commit.ID, new ImageTagParameters { RepositoryName = repository, Tag = tag }, cancellationToken).ConfigureAwait(false);
            Stage1ImageId = commit.ID;
        }
        finally
        {
            // Drops the build-private tag: after success the image keeps its real tag; after a failure it goes.
            if (temporaryReference is not null)
            {
                await engine.UntagAsync(temporaryReference).ConfigureAwait(false);
            }
            await engine.RemoveContainerAsync(container.ID, CleanupToken()).ConfigureAwait(false);
        }
    }

    private async Task<string> EnsureOsBaseAsync(DockerEngine engine, CancellationToken cancellationToken)
    {
        if (!File.Exists(BaseImagePath))
        {
            await CreateOsBaseAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            Log.LogMessage(MessageImportance.Normal, "Stage1: reusing the base tarball {0} (delete it to redo).", BaseImagePath);
        }
        return await BaseImageImport.ImportAsync(engine, BaseImagePath, MsOs, MsOsRelease,
            message => Log.LogMessage(MessageImportance.High, "Stage1: {0}", message), cancellationToken).ConfigureAwait(false);
    }

    private async System.Threading.Tasks.Task CreateOsBaseAsync(CancellationToken cancellationToken)
    {
        var script = Path.Combine(BootstrapScriptsDirectory, "stage0.sh");
        var canRunOnHost = OperatingSystem.IsLinux() && Mono.Unix.Native.Syscall.geteuid() == 0
            && new[] { "/usr/sbin/debootstrap", "/usr/bin/debootstrap", "/sbin/debootstrap" }.Any(File.Exists);
        if (!canRunOnHost)
        {
            throw new ImageBuildException(MsiCodes.BaseCannotBeCreated,
                $"The base tarball '{BaseImagePath}' is missing and this host cannot make it: stage0.sh needs root and debootstrap. Run the build as root with debootstrap installed, or place a base tarball there, or set MsBase to an existing image.",
                BaseImagePath);
        }

        Log.LogMessage(MessageImportance.High, "Stage1: creating the base tarball {0} with stage0.sh (debootstrap {1} {2}).", BaseImagePath, MsOs, MsOsRelease);
        var environment = StageEnvironment.ToDictionary(i => i.ItemSpec, i => i.GetMetadata("Value"));
        var (exitCode, lastLines) = await HostScriptRunner.RunAsync(script, environment,
            line => Log.LogMessage(MessageImportance.Normal, "stage0: {0}", line), cancellationToken).ConfigureAwait(false);
        if (exitCode != 0 || !File.Exists(BaseImagePath))
        {
            throw new ImageBuildException(MsiCodes.BaseCreationFailed,
                $"stage0.sh failed with exit code {exitCode}; no base tarball was written. Last lines:{Environment.NewLine}{string.Join(Environment.NewLine, lastLines)}", script);
        }
    }

    private string Stage1Key(string baseImageId)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        // The SDK build is part of the key: how a stage1 container is run is the SDK's code, not only the scripts.
        var sdk = typeof(Stage1BaseImage).Assembly.ManifestModule.ModuleVersionId;
        hash.AppendData(Encoding.UTF8.GetBytes($"sdk={sdk}\nbase={baseImageId}\nos={MsOs}\nrelease={MsOsRelease}\n"));
        foreach (var file in Directory.GetFiles(BootstrapScriptsDirectory).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith('.') || name == "stage0.sh" || name == "Dockerfile.stage0")
            {
                continue;
            }
            hash.AppendData(Encoding.UTF8.GetBytes($"{name}\n"));
            hash.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private InjectedTree BootstrapScriptsTree() =>
        InjectedTree.Collect([new InjectedTree.Source(BootstrapScriptsDirectory, "/docker/bootstrap_scripts/")]);

    internal static (string Repository, string Tag) SplitTag(string reference)
    {
        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/') ? (reference[..colon], reference[(colon + 1)..]) : (reference, "latest");
    }
}
