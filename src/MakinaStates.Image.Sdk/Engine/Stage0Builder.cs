using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The stage0 builder: an image built from Dockerfile.stage0 in which stage0.sh (debootstrap) runs when the build
/// host cannot run it. The base tarball is copied out through the archive API, so no host path is mounted.
/// </summary>
public static class Stage0Builder
{
    /// <summary>The effective Dockerfile.stage0: MsDockerfileStage0, else the one Stage0 placed with the scripts.</summary>
    public static string Dockerfile(string msDockerfileStage0, string bootstrapScriptsDirectory) =>
        string.IsNullOrWhiteSpace(msDockerfileStage0) ? Path.Combine(bootstrapScriptsDirectory, "Dockerfile.stage0") : msDockerfileStage0;

    /// <summary>
    /// The default builder, shared by every image project on the engine as the seed's
    /// makinacorpus/makina-states-&lt;os&gt;-&lt;release&gt;-stage0 was: named after the OS, the release and the
    /// Dockerfile's content, so projects with the same Dockerfile find one builder, and one whose Dockerfile differs
    /// gets its own instead of replacing the others'. No architecture in the name: the builder is always the engine's
    /// own platform (stage0.sh makes another platform's base with debootstrap --arch in it), and a tag names an
    /// image of one engine.
    /// </summary>
    public static string DefaultTag(string os, string release, string dockerfile) =>
        $"makinastates/stage0-{os.Trim().ToLowerInvariant()}-{release.Trim().ToLowerInvariant()}:{ContentKey(File.ReadAllBytes(dockerfile))[..16]}";

    /// <summary>The builder's key (its label): the SHA-256 of its Dockerfile.</summary>
    private static string ContentKey(byte[] dockerfile) => Convert.ToHexStringLower(SHA256.HashData(dockerfile));

    /// <summary>Builds the builder image, or reuses it while its Dockerfile is unchanged (a tag of the user's is rebuilt
    /// in place when it changes; the default tag changes with it).</summary>
    public static async Task<string> EnsureImageAsync(DockerEngine engine, string dockerfile, string tag, bool skipBuild,
        Action<string> log, CancellationToken cancellationToken)
    {
        var existing = await engine.TryInspectImageAsync(tag, cancellationToken).ConfigureAwait(false);
        if (skipBuild)
        {
            return existing?.ID ?? throw new ImageBuildException(MsiCodes.Stage0BuilderMissing,
                MsiMessages.Format("Stage0BuilderMissing", tag));
        }

        var content = await File.ReadAllBytesAsync(dockerfile, cancellationToken).ConfigureAwait(false);
        var key = ContentKey(content);
        if (existing?.Config?.Labels is { } labels && labels.TryGetValue(BuildLabels.Stage0Key, out var existingKey) && existingKey == key)
        {
            log($"stage0 builder {tag} is up to date, reused.");
            return existing.ID;
        }

        log($"building the stage0 builder {tag} from {dockerfile}.");
        using var context = new MemoryStream();
        var writer = new PaxTarWriter(context);
        await writer.WriteEntryAsync(new PaxTarWriter.Entry("Dockerfile", PaxTarWriter.EntryType.File, 0x1A4, 0, 0, DateTimeOffset.UnixEpoch) { Size = content.Length },
            new MemoryStream(content), cancellationToken).ConfigureAwait(false);
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
        context.Position = 0;

        string? error = null;
        var (repository, imageTag) = Settings.ImageReference.SplitTag(tag);
        await engine.Client.Images.BuildImageFromDockerfileAsync(new ImageBuildParameters
        {
            Tags = [$"{repository}:{imageTag}"],
            Labels = new Dictionary<string, string> { [BuildLabels.Stage0Key] = key },
            Remove = true,
            ForceRemove = true,
        }, context, null, null, new ImmediateProgress<JSONMessage>(m =>
        {
            if (m.Error is not null) error ??= m.Error.Message;
            else if (!string.IsNullOrWhiteSpace(m.Stream)) log(m.Stream.TrimEnd());
        }), cancellationToken).ConfigureAwait(false);

        var built = await engine.TryInspectImageAsync(tag, cancellationToken).ConfigureAwait(false);
        if (error is not null || built is null || built.Config?.Labels is not { } builtLabels || !builtLabels.TryGetValue(BuildLabels.Stage0Key, out var builtKey) || builtKey != key)
        {
            throw new ImageBuildException(MsiCodes.Stage0BuilderFailed,
                MsiMessages.Format("Stage0BuilderFailed", dockerfile, error ?? "no image was tagged"), dockerfile);
        }
        if (existing is not null && existing.ID != built.ID)
        {
            // Replaced: the old builder goes (unless a container still uses it).
            await engine.RemoveImageIfPresentAsync(existing.ID, cancellationToken).ConfigureAwait(false);
        }
        return built.ID;
    }

    /// <summary>
    /// Runs stage0.sh in a builder container and copies out what it made: the first of <paramref name="outputs"/>
    /// (path in the container, path on this host) that exists. Returns its index.
    /// </summary>
    public static async Task<int> RunAsync(DockerEngine engine, string builderImage, CreateContainerParameters container, InjectedTree scripts,
        IReadOnlyList<(string InContainer, string OnHost)> outputs, Action<string> log, CancellationToken cancellationToken)
    {
        var created = await engine.Client.Containers.CreateContainerAsync(container, cancellationToken).ConfigureAwait(false);
        try
        {
            await ArchiveUpload.UploadAsync(engine, created.ID, scripts, cancellationToken).ConfigureAwait(false);
            var (exitCode, lastLines) = await ContainerRun.RunToExitAsync(engine, created.ID, log, cancellationToken).ConfigureAwait(false);
            if (exitCode != 0)
            {
                throw ImageBuildException.ScriptFailed(MsiCodes.BaseCreationFailed, "BaseCreationFailed_2", exitCode, lastLines, details: builderImage);
            }

            var made = 0;
            while (made < outputs.Count - 1 && !await ContainerFiles.ExistsAsync(engine, created.ID, outputs[made].InContainer, cancellationToken).ConfigureAwait(false))
            {
                made++;
            }
            var (containerOutput, tarballPath) = outputs[made];
            // An interrupted copy never leaves a truncated tarball.
            var download = Concurrency.AtomicFile.TemporaryPath(tarballPath + ".download");
            try
            {
                // The archive is saved first, then unpacked: the engine's chunked stream must be read to its end
                // in one go (reading it through a tar reader fails at the end).
                var archive = await engine.Client.Containers.GetArchiveFromContainerAsync(created.ID,
                    new ContainerPathStatParameters { Path = containerOutput }, false, cancellationToken).ConfigureAwait(false);
                await using (var stream = archive.Stream!)
                await using (var file = File.Create(download))
                {
                    await stream.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
                }
                await using var reader = new TarReader(File.OpenRead(download));
                var entry = await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false);
                if (entry?.DataStream is null)
                {
                    throw new ImageBuildException(MsiCodes.BaseCreationFailed, MsiMessages.Format("BaseCreationFailed_3", containerOutput));
                }
                return await Concurrency.AtomicFile.WriteAsync(tarballPath, async partial =>
                {
                    await using var file = File.Create(partial);
                    await entry.DataStream.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
                    return made;
                }).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(download);
            }
        }
        finally
        {
            await engine.RemoveContainerAsync(created.ID, CancellationToken.None).ConfigureAwait(false);
        }
    }
}
