using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Injection;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Writes a committed image's top layer again with the POSIX ACLs and user xattrs its paths had in the container
/// (`docker commit` keeps only security.capability), and loads it back under the same name. Only the top layer is
/// rewritten and sent: the lower layers stay on the engine (named in manifest.json, absent from the load archive).
/// Apart from time clamping (with an epoch), each entry stays as it was: content, whiteouts, owners, modes, links and
/// the xattr records it already had. With an epoch the result is reproducible: the same content gives the same layer
/// digest and the same image id.
/// </summary>
public static class TopLayerRewrite
{
    /// <summary>The top layer as written again, in the spool, with what the load archive needs.</summary>
    public sealed record Rewritten(string LayerFile, string DiffId, byte[] Config, IReadOnlyList<string> LowerLayerPaths, IReadOnlyList<string> DiffIds)
    {
        public string ImageId => ImageIdOf(Config);
    }

    /// <summary>
    /// Commits the stopped container <paramref name="commit"/> names as its repository:tag, with the container's layer
    /// written again (its ACLs and xattrs in, times clamped to the epoch); the new image id.
    /// On a local Docker engine with overlay2 the engine never commits the build container's layer (a large layer would
    /// be written once more for nothing): the layer is read from the container's upper dir, and the config is the one
    /// `docker commit` makes, taken from the commit of a twin (a container created from the same image with the same
    /// config, never started, so its layer is empty) with the same changes. Elsewhere the container itself is committed
    /// and its layer is written again from `docker save`, with the ACLs and xattrs save-acls.sh listed in it.
    /// </summary>
    public static async Task<string> CommitAsync(DockerEngine engine, CommitContainerChangesParameters commit, DateTimeOffset? sourceDateEpoch,
        string spoolDirectory, Action<string> log, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        var steps = new StepTimes();
        var reference = $"{commit.RepositoryName}:{commit.Tag}";
        var containerId = commit.ContainerID;
        var layer = await UpperDirLayerAsync(engine, containerId, sourceDateEpoch, log, cancellationToken).ConfigureAwait(false);
        steps.Mark("read");
        var how = "";
        string? committedId = null, loadedId = null;
        try
        {
            if (layer is not null)
            {
                committedId = await CommitTwinAsync(engine, commit, cancellationToken).ConfigureAwait(false);
                steps.Mark("commit the config");
                if (await StoredConfigAsync(engine, committedId, cancellationToken).ConfigureAwait(false) is { } config)
                {
                    var diffIds = (await engine.Client.Images.InspectImageAsync(committedId, cancellationToken).ConfigureAwait(false)).RootFS?.Layers ?? [];
                    loadedId = await LoadFromUpperDirAsync(engine, reference, layer, config, diffIds, sourceDateEpoch, cancellationToken).ConfigureAwait(false);
                    how = $"from the container's upper dir: {layer.EntryCount} entries, {TransferProgress.Megabytes(layer.Length)}";
                    steps.Mark("write and load");
                    return loadedId;
                }
                // The engine's image store is not where this process can read it: the container itself is committed.
                await engine.RemoveImageIfPresentAsync(committedId, CancellationToken.None).ConfigureAwait(false);
            }
            committedId = (await engine.CommitAsync(commit, cancellationToken).ConfigureAwait(false)).ID;
            steps.Mark("commit");
            var xattrs = await ContainerXattrs.ReadAsync(engine, containerId, cancellationToken).ConfigureAwait(false);
            var layers = (await engine.Client.Images.InspectImageAsync(committedId, cancellationToken).ConfigureAwait(false)).RootFS?.Layers ?? [];
            if (layers.Count == 0)
            {
                throw Failed(reference, engine, "the image has no layer");
            }
            loadedId = await RewriteSavedImageAsync(engine, reference, xattrs, layers, sourceDateEpoch, spoolDirectory, cancellationToken).ConfigureAwait(false);
            how = $"from the saved image, with the ACLs and xattrs save-acls.sh listed ({xattrs.Count} path(s))";
            steps.Mark("save, write and load");
            return loadedId;
        }
        finally
        {
            // The image as committed goes, whatever happened (a load untags it; its lower layers are the loaded image's).
            if (committedId is not null)
            {
                await ImageArchive.RemoveReplacedAsync(engine, committedId, loadedId ?? "").ConfigureAwait(false);
                steps.Mark("remove the committed image");
            }
            if (loadedId is not null)
            {
                log($"Committed {reference} with its layer written again, its ACLs and xattrs in{(sourceDateEpoch is { } e ? $", times clamped to {e.ToUnixTimeSeconds()}" : "")} ({how}; {steps}; {started.Elapsed.TotalSeconds:0.0} s).");
            }
        }
    }

    /// <summary>
    /// The layer of the container's upper dir, when this process can read it (a local Docker engine with overlay2); null
    /// otherwise, or when it holds what only the engine's own diff describes.
    /// </summary>
    private static async Task<UpperDirLayer?> UpperDirLayerAsync(DockerEngine engine, string containerId, DateTimeOffset? sourceDateEpoch,
        Action<string> log, CancellationToken cancellationToken)
    {
        if (!engine.SharesHostFileSystem || (await engine.IdentityAsync(cancellationToken).ConfigureAwait(false)).IsPodman)
        {
            return null;
        }
        var container = await engine.Client.Containers.InspectContainerAsync(containerId, cancellationToken).ConfigureAwait(false);
        if (container.GraphDriver?.Name != "overlay2" || container.GraphDriver.Data?.TryGetValue("UpperDir", out var upperDir) != true || !Directory.Exists(upperDir))
        {
            return null;
        }
        try
        {
            return UpperDirLayer.Collect(upperDir!, sourceDateEpoch);
        }
        catch (NotSupportedException e)
        {
            log($"The container's upper dir holds what only the engine's own layer describes ({e.Message}): the container is committed and its layer read from the saved image.");
            return null;
        }
    }

    /// <summary>
    /// Commits, with <paramref name="commit"/>'s changes, a container created from the same image with the same config
    /// as the one it names, never started: what `docker commit` makes of the config, over an empty layer. The twin
    /// carries the container's labels (an orphan is reaped like a stage container) and is removed at once.
    /// </summary>
    private static async Task<string> CommitTwinAsync(DockerEngine engine, CommitContainerChangesParameters commit, CancellationToken cancellationToken)
    {
        var container = await engine.Client.Containers.InspectContainerAsync(commit.ContainerID, cancellationToken).ConfigureAwait(false);
        var parameters = new CreateContainerParameters();
        // Every field of the container's config (the create parameters are those fields, plus host and network settings).
        var config = container.Config ?? throw Failed($"{commit.RepositoryName}:{commit.Tag}", engine, $"the container {commit.ContainerID} has no config");
        foreach (var property in config.GetType().GetProperties())
        {
            if (typeof(CreateContainerParameters).GetProperty(property.Name) is { CanWrite: true } target && target.PropertyType == property.PropertyType)
            {
                target.SetValue(parameters, property.GetValue(config));
            }
        }
        parameters.Image = container.Image;
        if (parameters.Labels?.ContainsKey(BuildLabels.Stage) == true)
        {
            // A stage container's twin says what it is (the commit's own labels blank this one in the image).
            parameters.Labels = new Dictionary<string, string>(parameters.Labels) { [BuildLabels.Stage] = "commit" };
        }
        var twin = (await engine.Client.Containers.CreateContainerAsync(parameters, cancellationToken).ConfigureAwait(false)).ID;
        var buildContainer = commit.ContainerID;
        try
        {
            commit.ContainerID = twin;
            return (await engine.CommitAsync(commit, cancellationToken).ConfigureAwait(false)).ID;
        }
        finally
        {
            commit.ContainerID = buildContainer;
            await engine.Client.Containers.RemoveContainerAsync(twin, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, CancellationToken.None)
                .ConfigureAwait(false);
        }
    }

    /// <summary>The image's config as the engine stored it (a local Docker engine's image store), taken only when its digest is the image id.</summary>
    private static async Task<byte[]?> StoredConfigAsync(DockerEngine engine, string imageId, CancellationToken cancellationToken)
    {
        var info = await engine.Client.System.GetSystemInfoAsync(cancellationToken).ConfigureAwait(false);
        var configPath = Path.Combine(info.DockerRootDir ?? "", "image", "overlay2", "imagedb", "content", "sha256", imageId["sha256:".Length..]);
        try
        {
            var config = await File.ReadAllBytesAsync(configPath, cancellationToken).ConfigureAwait(false);
            return ImageIdOf(config) == imageId ? config : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static async Task<string> LoadFromUpperDirAsync(DockerEngine engine, string reference, UpperDirLayer layer, byte[] committedConfig,
        IList<string> diffIds, DateTimeOffset? sourceDateEpoch, CancellationToken cancellationToken)
    {
        byte[]? config = null;
        List<string>? newDiffIds = null;
        var error = await ImageArchive.LoadAsync(engine, async (output, ct) =>
        {
            // docker load reads the whole archive before manifest.json: the config, which names the layer's digest, comes after it.
            var writer = new PaxTarWriter(output);
            const string layerPath = "top/layer.tar";
            var pipe = new System.IO.Pipelines.Pipe();
            var producing = ProduceAsync(pipe.Writer, layer, ct);
            await using (var content = pipe.Reader.AsStream())
            {
                await writer.WriteEntryAsync(ArchiveFile(layerPath, layer.Length), content, ct).ConfigureAwait(false);
            }
            var newDiffId = await producing.ConfigureAwait(false);
            (config, newDiffIds) = ComposeConfig(committedConfig, diffIds.Count, diffIds[^1], newDiffId, sourceDateEpoch);
            var lower = Enumerable.Range(0, newDiffIds.Count - 1).Select(i => $"lower-{i}/layer.tar");
            await WriteConfigAndManifestAsync(writer, config, reference, lower.Append(layerPath), ct).ConfigureAwait(false);
            await writer.FinishAsync(ct).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        return await CheckLoadedAsync(engine, reference, error, config is null ? null : ImageIdOf(config), newDiffIds, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<string> ProduceAsync(System.IO.Pipelines.PipeWriter output, UpperDirLayer layer, CancellationToken cancellationToken)
    {
        try
        {
            string digest;
            await using (var stream = output.AsStream(leaveOpen: true))
            {
                digest = await layer.WriteAsync(stream, cancellationToken).ConfigureAwait(false);
            }
            await output.CompleteAsync().ConfigureAwait(false);
            return digest;
        }
        catch (Exception e)
        {
            await output.CompleteAsync(e).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<string> RewriteSavedImageAsync(DockerEngine engine, string reference,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> xattrsByPath, IList<string> diffIds, DateTimeOffset? sourceDateEpoch,
        string spoolDirectory, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(spoolDirectory);
        var spool = Path.Combine(spoolDirectory, $"top-layer-{Guid.NewGuid():N}.tar");
        try
        {
            Rewritten rewritten;
            try
            {
                await using var saved = await ImageArchive.SaveAsync(engine, reference, cancellationToken).ConfigureAwait(false);
                rewritten = await RewriteSavedAsync(saved, diffIds[^1], diffIds.Count, xattrsByPath, sourceDateEpoch, spool, cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidDataException e)
            {
                throw Failed(reference, engine, e.Message, e);
            }
            var error = await ImageArchive.LoadAsync(engine, (output, ct) => WriteLoadArchiveAsync(rewritten, reference, output, ct), cancellationToken)
                .ConfigureAwait(false);
            return await CheckLoadedAsync(engine, reference, error, rewritten.ImageId, rewritten.DiffIds, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(spool);
            File.Delete(spool + ".raw");
        }
    }

    /// <summary>The loaded image's id, when the engine names by <paramref name="reference"/> the image that was written.</summary>
    private static async Task<string> CheckLoadedAsync(DockerEngine engine, string reference, string? error, string? expectedId,
        IReadOnlyList<string>? expectedDiffIds, CancellationToken cancellationToken)
    {
        var loaded = await engine.TryInspectImageAsync(reference, cancellationToken).ConfigureAwait(false);
        if (error is not null || expectedId is null || loaded?.ID != expectedId || loaded.RootFS?.Layers?.SequenceEqual(expectedDiffIds ?? []) != true)
        {
            throw Failed(reference, engine, error ?? $"the engine names {loaded?.ID ?? "no image"} {reference}, not the loaded {expectedId}");
        }
        return loaded.ID;
    }

    /// <summary>
    /// The committed config with the new top layer, normalized with an epoch. A commit of an empty layer (the twin's)
    /// has none: docker records an empty_layer history entry instead, which becomes the new layer's.
    /// </summary>
    private static (byte[] Config, List<string> DiffIds) ComposeConfig(byte[] committed, int layerCount, string topDiffId, string newDiffId,
        DateTimeOffset? sourceDateEpoch)
    {
        var config = JsonNode.Parse(committed)!.AsObject();
        var configDiffIds = config["rootfs"]?["diff_ids"]?.AsArray() ?? throw new InvalidDataException("the image config has no rootfs.diff_ids");
        if (configDiffIds.Count != layerCount || configDiffIds[^1]?.GetValue<string>() != topDiffId)
        {
            throw new InvalidDataException($"the image config's rootfs.diff_ids do not end with the top layer {topDiffId}");
        }
        if (config["history"]?.AsArray().LastOrDefault() is JsonObject last && last["empty_layer"]?.GetValue<bool>() == true)
        {
            last.Remove("empty_layer");
            configDiffIds.Add(newDiffId);
        }
        else
        {
            configDiffIds[^1] = newDiffId;
        }
        if (sourceDateEpoch is { } epoch)
        {
            Normalize(config, epoch);
        }
        return (Encoding.UTF8.GetBytes(config.ToJsonString()), [.. configDiffIds.Select(d => d!.GetValue<string>())]);
    }

    private static string ImageIdOf(byte[] config) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(config));

    private static async Task WriteConfigAndManifestAsync(PaxTarWriter writer, byte[] config, string reference, IEnumerable<string> layerPaths, CancellationToken cancellationToken)
    {
        var configName = ImageIdOf(config)["sha256:".Length..] + ".json";
        var manifest = new JsonArray(new JsonObject
        {
            ["Config"] = configName,
            ["RepoTags"] = new JsonArray(reference),
            ["Layers"] = new JsonArray([.. layerPaths.Select(p => (JsonNode)p!)]),
        });
        foreach (var (name, bytes) in new[] { (configName, config), ("manifest.json", Encoding.UTF8.GetBytes(manifest.ToJsonString())) })
        {
            await writer.WriteEntryAsync(ArchiveFile(name, bytes.Length), new MemoryStream(bytes), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads a `docker save` archive, writes its top layer again into <paramref name="spoolFile"/> (and, with an epoch,
    /// <paramref name="spoolFile"/>.raw: the caller deletes both) and makes the new config; the lower layers are skipped.
    /// </summary>
    /// <remarks>
    /// Finding the top layer: `docker save` writes manifest.json (which lists the layers in order) after the layers,
    /// and the config (rootfs.diff_ids) may come before or after them (Docker 20.10 sorts the archive by name, the
    /// layer folders being named by v1 ids), so neither tells a layer's place when it streams by; spooling every
    /// layer to decide afterwards would write the whole image to disk. So a layer is taken as a candidate when it is
    /// the only one, when its name holds the top diff_id (Podman's and the OCI layout's layers are named by digest),
    /// or when its v1 "json" (which comes before layer.tar in the same folder) is the image's own: Docker gives the
    /// lower layers a placeholder without "config". A candidate is rewritten while its original bytes are hashed,
    /// and kept only when that hash is the top diff_id (the engine's own inspect said which): a wrong guess costs time,
    /// never a wrong layer, and no match at all is an error.
    /// </remarks>
    public static async Task<Rewritten> RewriteSavedAsync(Stream saved, string topDiffId, int layerCount,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> xattrsByPath, DateTimeOffset? sourceDateEpoch, string spoolFile,
        CancellationToken cancellationToken)
    {
        var imageFolders = new HashSet<string>(StringComparer.Ordinal);
        var configs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        byte[]? manifest = null;
        string? topPath = null, newDiffId = null;
        await using var reader = new TarReader(saved, leaveOpen: true);
        while (await reader.GetNextEntryAsync(copyData: false, cancellationToken).ConfigureAwait(false) is { } entry)
        {
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || entry.DataStream is null)
            {
                continue;
            }
            var name = entry.Name;
            var folder = Path.GetDirectoryName(name) ?? "";
            if (name == "manifest.json" || (name.EndsWith(".json", StringComparison.Ordinal) && !name.Contains('/')))
            {
                var bytes = await ReadAllAsync(entry.DataStream, cancellationToken).ConfigureAwait(false);
                if (name == "manifest.json") manifest = bytes; else configs[name] = bytes;
            }
            else if (name.EndsWith("/json", StringComparison.Ordinal))
            {
                if (JsonNode.Parse(await ReadAllAsync(entry.DataStream, cancellationToken).ConfigureAwait(false)) is JsonObject v1 && v1.ContainsKey("config"))
                {
                    imageFolders.Add(folder);
                }
            }
            else if (topPath is null && IsLayer(name)
                     && (layerCount == 1 || imageFolders.Contains(folder) || name.Contains(topDiffId["sha256:".Length..], StringComparison.Ordinal)))
            {
                var (original, rewritten) = await RewriteLayerAsync(entry.DataStream, xattrsByPath, sourceDateEpoch, spoolFile, cancellationToken).ConfigureAwait(false);
                if (original == topDiffId)
                {
                    (topPath, newDiffId) = (name, rewritten);
                }
            }
        }
        if (topPath is null || newDiffId is null)
        {
            throw new InvalidDataException($"the saved image holds no layer whose digest is its top diff_id {topDiffId}");
        }
        var image = JsonNode.Parse(manifest ?? throw new InvalidDataException("the saved image has no manifest.json"))!.AsArray()
            .OfType<JsonObject>().FirstOrDefault() ?? throw new InvalidDataException("manifest.json names no image");
        var configName = image["Config"]?.GetValue<string>() ?? "";
        var layers = image["Layers"]?.AsArray().Select(l => l!.GetValue<string>()).ToList() ?? [];
        if (!configs.TryGetValue(configName, out var configBytes) || layers.Count != layerCount)
        {
            throw new InvalidDataException($"manifest.json names the config '{configName}' and {layers.Count} layer(s), which the archive and the image ({layerCount} layers) do not match");
        }
        var (config, diffIds) = ComposeConfig(configBytes, layerCount, topDiffId, newDiffId, sourceDateEpoch);
        return new Rewritten(spoolFile, newDiffId, config, layers[..^1], diffIds);
    }

    /// <summary>
    /// The archive `docker load` takes: the new top layer, the config named by its digest, and manifest.json naming
    /// the lower layers as `docker save` did (absent: the engine has their chain) and the new one.
    /// </summary>
    public static async Task WriteLoadArchiveAsync(Rewritten rewritten, string reference, Stream output, CancellationToken cancellationToken)
    {
        var writer = new PaxTarWriter(output);
        var layerPath = rewritten.DiffId["sha256:".Length..] + "/layer.tar";
        await using (var layer = File.OpenRead(rewritten.LayerFile))
        {
            await writer.WriteEntryAsync(ArchiveFile(layerPath, layer.Length), layer, cancellationToken).ConfigureAwait(false);
        }
        await WriteConfigAndManifestAsync(writer, rewritten.Config, reference, rewritten.LowerLayerPaths.Append(layerPath), cancellationToken).ConfigureAwait(false);
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes one layer again into <paramref name="spoolFile"/>; the digests of the layer as read and as written.
    /// Without an epoch it streams, entry by entry in the original order. With one, the layer is first copied to
    /// spoolFile.raw, then written sorted by name from there (overlayfs' readdir order is not stable).
    /// </summary>
    public static async Task<(string Original, string Rewritten)> RewriteLayerAsync(Stream layer,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> xattrsByPath, DateTimeOffset? sourceDateEpoch, string spoolFile,
        CancellationToken cancellationToken)
    {
        var input = new Sha256Stream(layer);
        await using var file = new FileStream(spoolFile, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true);
        var output = new Sha256Stream(file);
        var writer = new PaxTarWriter(output);
        if (sourceDateEpoch is not { } epoch)
        {
            var reader = new LayerTarReader(input);
            while (await reader.NextAsync(cancellationToken).ConfigureAwait(false) is { } entry)
            {
                await writer.WriteEntryAsync(Rewrite(entry, entry.Name, entry.LinkName, xattrsByPath, null), reader.Content, cancellationToken).ConfigureAwait(false);
            }
            await reader.DrainAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await using var raw = new FileStream(spoolFile + ".raw", FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20, useAsync: true);
            await input.CopyToAsync(raw, 1 << 20, cancellationToken).ConfigureAwait(false);
            raw.Position = 0;
            var reader = new LayerTarReader(raw);
            var entries = new List<LayerTarReader.Entry>();
            while (await reader.NextAsync(cancellationToken).ConfigureAwait(false) is { } entry)
            {
                entries.Add(entry);
            }
            foreach (var (entry, name, link) in Sorted(entries))
            {
                await writer.WriteEntryAsync(Rewrite(entry, name, link, xattrsByPath, epoch), reader.ContentOf(entry), cancellationToken).ConfigureAwait(false);
            }
        }
        await writer.FinishAsync(cancellationToken).ConfigureAwait(false);
        return (input.Digest(), output.Digest());
    }

    /// <summary>
    /// Entries by name, hard links last (a link needs its target written before it). Which name of a set of hard links
    /// the tar holds as the file depends on the readdir order too: the first by name becomes the file, the others link to it.
    /// </summary>
    private static IEnumerable<(LayerTarReader.Entry Entry, string Name, string? Link)> Sorted(List<LayerTarReader.Entry> entries)
    {
        static bool IsLink(LayerTarReader.Entry e) => e.Type == (byte)'1';
        var files = new Dictionary<string, LayerTarReader.Entry>(StringComparer.Ordinal);
        foreach (var entry in entries.Where(e => !IsLink(e)))
        {
            files.TryAdd(entry.Path, entry);
        }
        // Target path -> the name the set's file gets (a link to a file outside the layer stays as it is).
        var first = entries.Where(e => IsLink(e) && files.ContainsKey(LayerTarReader.Normalize(e.LinkName!)))
            .GroupBy(e => LayerTarReader.Normalize(e.LinkName!), StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(e => e.Name).Append(files[g.Key].Name).MinBy(LayerTarReader.Normalize, StringComparer.Ordinal)!,
                StringComparer.Ordinal);
        var result = new List<(LayerTarReader.Entry Entry, string Name, string? Link)>();
        foreach (var entry in entries)
        {
            if (IsLink(entry) && first.TryGetValue(LayerTarReader.Normalize(entry.LinkName!), out var file))
            {
                if (entry.Name != file)
                {
                    result.Add((entry, entry.Name, file));
                }
            }
            else if (!IsLink(entry) && first.TryGetValue(entry.Path, out file) && file != entry.Name)
            {
                // The file's content and metadata under the first name; its own name becomes a link to it.
                result.Add((entry, file, null));
                result.Add((entry with { Type = (byte)'1', Size = 0 }, entry.Name, file));
            }
            else
            {
                result.Add((entry, entry.Name, entry.LinkName));
            }
        }
        return result.OrderBy(r => IsLink(r.Entry)).ThenBy(r => LayerTarReader.Normalize(r.Name), StringComparer.Ordinal).ThenBy(r => r.Name, StringComparer.Ordinal);
    }

    private static PaxTarWriter.Entry Rewrite(LayerTarReader.Entry entry, string name, string? link,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, byte[]>> xattrsByPath, DateTimeOffset? epoch)
    {
        if (entry.Type is (byte)'3' or (byte)'4' && (entry.DevMajor != 0 || entry.DevMinor != 0))
        {
            // PaxTarWriter writes no device numbers.
            throw new InvalidDataException($"{entry.Name} is a device ({entry.DevMajor}:{entry.DevMinor}), which this rewrite cannot write.");
        }
        var type = entry.IsFile ? PaxTarWriter.EntryType.File : (PaxTarWriter.EntryType)entry.Type;
        var xattrs = new Dictionary<string, byte[]>(entry.Xattrs, StringComparer.Ordinal);
        if (!entry.IsWhiteout && xattrsByPath.TryGetValue(LayerTarReader.Normalize(name), out var saved))
        {
            foreach (var (key, value) in saved)
            {
                // Records already in the layer (security.capability) stay as they are.
                xattrs.TryAdd(key, value);
            }
        }
        var mtime = epoch is { } clamp && entry.ModificationTime > clamp ? clamp : entry.ModificationTime;
        return new PaxTarWriter.Entry(name, type, entry.Mode, entry.Uid, entry.Gid, mtime)
        {
            Size = type == PaxTarWriter.EntryType.File ? entry.Size : 0,
            LinkName = link,
            Xattrs = xattrs,
        };
    }

    /// <summary>
    /// What ties the config to the build container, the engine or the build time goes: `created` and this layer's
    /// history entry are the epoch, and the lower layers' history times are clamped to it (an imported base records
    /// when it was imported, which differs from one import of the same tarball to the next).
    /// </summary>
    private static void Normalize(JsonObject config, DateTimeOffset epoch)
    {
        var created = epoch.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'", CultureInfo.InvariantCulture);
        config["created"] = created;
        var history = config["history"]?.AsArray().OfType<JsonObject>().ToList() ?? [];
        var own = history.LastOrDefault(h => h["empty_layer"]?.GetValue<bool>() != true);
        foreach (var entry in history)
        {
            if (entry == own || !DateTimeOffset.TryParse(entry["created"]?.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time) || time > epoch)
            {
                entry["created"] = created;
            }
        }
        config.Remove("container");
        config.Remove("container_config");
        config.Remove("docker_version");
        if (config["config"] is JsonObject containerConfig)
        {
            // The build container's name, and the parent image's id (an imported base's differs from one import to the next).
            containerConfig.Remove("Hostname");
            containerConfig["Image"] = "";
        }
    }

    private static bool IsLayer(string name) =>
        name.EndsWith("/layer.tar", StringComparison.Ordinal) || (!name.Contains('/') && name.EndsWith(".tar", StringComparison.Ordinal))
        || name.StartsWith("blobs/sha256/", StringComparison.Ordinal);

    private static PaxTarWriter.Entry ArchiveFile(string name, long size) =>
        new(name, PaxTarWriter.EntryType.File, 0x1A4, 0, 0, DateTimeOffset.UnixEpoch) { Size = size };

    private static async Task<byte[]> ReadAllAsync(Stream data, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        await data.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        return buffer.ToArray();
    }

    private static ImageBuildException Failed(string reference, DockerEngine engine, string reason, Exception? inner = null) =>
        new(MsiCodes.TopLayerRewriteFailed, MsiMessages.Format("TopLayerRewriteFailed", reference, engine.Endpoint.Display, reason), inner: inner);
}
