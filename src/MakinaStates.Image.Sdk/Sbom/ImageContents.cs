using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>
/// What a bill of materials reads from a built image: dpkg's status, each package's copyright file, os-release, and the
/// commit of makina-states when stage2 installed it. Read through the archive API from a container created from the
/// image and never started (so any engine, remote and Podman included, answers the same way), then removed.
/// </summary>
public sealed record ImageContents(string? DpkgStatus, IReadOnlyDictionary<string, string>? CopyrightByPackage,
    IReadOnlyDictionary<string, string> OsRelease, string? MakinaStatesCommit)
{
    private const string Documentation = "/usr/share/doc";
    private const string MakinaStatesGit = "/srv/salt/makina-states/.git";
    // A copyright file is text of some kilobytes; anything far larger is not one worth holding in memory.
    private const long LargestCopyright = 4 << 20;

    /// <param name="readsCopyrights">Given dpkg's status, whether the copyright files are read (CopyrightByPackage is
    /// null when they are not: the caller knows the licenses of that status).</param>
    /// <param name="readsMakinaStates">Whether makina-states' clone is looked for (each path read costs the engine a
    /// mount of the container).</param>
    public static async Task<ImageContents> ReadAsync(DockerEngine engine, string imageId, IDictionary<string, string> labels,
        Func<string, bool> readsCopyrights, bool readsMakinaStates, CancellationToken cancellationToken)
    {
        var container = await engine.Client.Containers.CreateContainerAsync(new CreateContainerParameters
        {
            Image = imageId,
            // Never started: an entrypoint is only what the engine needs to create it (an imported image may have no command).
            Entrypoint = ["/nonexistent-never-started"],
            NetworkDisabled = true,
            Labels = labels,
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            var status = await ReadTextAsync(engine, container.ID, "/var/lib/dpkg/status", cancellationToken).ConfigureAwait(false);
            var copyrights = status is null ? new Dictionary<string, string>()
                : readsCopyrights(status) ? await ReadCopyrightsAsync(engine, container.ID, cancellationToken).ConfigureAwait(false) : null;
            var osRelease = await ReadTextAsync(engine, container.ID, "/usr/lib/os-release", cancellationToken).ConfigureAwait(false)
                ?? await ReadTextAsync(engine, container.ID, "/etc/os-release", cancellationToken).ConfigureAwait(false);
            return new ImageContents(status, copyrights, ParseOsRelease(osRelease),
                readsMakinaStates ? await ReadMakinaStatesCommitAsync(engine, container.ID, cancellationToken).ConfigureAwait(false) : null);
        }
        finally
        {
            await engine.RemoveContainerAsync(container.ID, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>os-release's KEY=value lines, quotes removed.</summary>
    public static IReadOnlyDictionary<string, string> ParseOsRelease(string? text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in (text ?? "").Split('\n'))
        {
            var (key, value) = line.Trim().Split('=', 2) is [var k, var v] ? (k, v) : ("", "");
            if (key.Length > 0 && !key.StartsWith('#'))
            {
                values[key] = value.Trim().Trim('"', '\'');
            }
        }
        return values;
    }

    /// <summary>One file's text, or null when the image has no such file (or it is not a regular file).</summary>
    private static async Task<string?> ReadTextAsync(DockerEngine engine, string containerId, string path, CancellationToken cancellationToken)
    {
        string? text = null;
        await ReadArchiveAsync(engine, containerId, path, async (reader, entry) =>
        {
            if (text is null && entry.IsFile)
            {
                text = await ReadContentAsync(reader, cancellationToken).ConfigureAwait(false);
            }
        }, cancellationToken).ConfigureAwait(false);
        return text;
    }

    /// <summary>
    /// /usr/share/doc/&lt;package&gt;/copyright for every package, in one archive of the folder. A package's doc folder,
    /// or its copyright file, may be a link to another package's (libstdc++6 → gcc-12-base): links are followed.
    /// </summary>
    private static async Task<Dictionary<string, string>> ReadCopyrightsAsync(DockerEngine engine, string containerId, CancellationToken cancellationToken)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        var folderLinks = new Dictionary<string, string>(StringComparer.Ordinal);
        var fileLinks = new Dictionary<string, string>(StringComparer.Ordinal);
        await ReadArchiveAsync(engine, containerId, Documentation, async (reader, entry) =>
        {
            // Entries are named from the folder's own name: doc/<package>[/copyright].
            var parts = entry.Path.Split('/');
            if (parts.Length == 2 && entry.Type == (byte)'2' && entry.LinkName is { } folderTarget)
            {
                folderLinks[parts[1]] = folderTarget;
            }
            else if (parts.Length == 3 && parts[2] == "copyright")
            {
                if (entry.IsFile && entry.Size <= LargestCopyright)
                {
                    files[parts[1]] = await ReadContentAsync(reader, cancellationToken).ConfigureAwait(false);
                }
                else if (entry.Type == (byte)'2' && entry.LinkName is { } fileTarget)
                {
                    fileLinks[parts[1]] = fileTarget;
                }
            }
        }, cancellationToken).ConfigureAwait(false);

        foreach (var (package, target) in fileLinks)
        {
            // "../other/copyright" or "/usr/share/doc/other/copyright".
            if (PackageOf(target, relativeTo: package, copyrightLink: true) is { } other && files.TryGetValue(other, out var text))
            {
                files[package] = text;
            }
        }
        foreach (var (package, target) in folderLinks)
        {
            var other = PackageOf(target, relativeTo: package, copyrightLink: false);
            // A chain of links is rare; a few steps are followed, a loop is not.
            for (var step = 0; other is not null && !files.ContainsKey(other) && folderLinks.TryGetValue(other, out var next) && step < 8; step++)
            {
                other = PackageOf(next, relativeTo: other, copyrightLink: false);
            }
            if (other is not null && files.TryGetValue(other, out var text))
            {
                files[package] = text;
            }
        }
        return files;
    }

    /// <summary>The doc folder a link points at: "gcc-12-base", "../gcc-12-base/copyright", "/usr/share/doc/x".</summary>
    private static string? PackageOf(string target, string relativeTo, bool copyrightLink)
    {
        var folder = Path.GetFullPath(target, copyrightLink ? $"{Documentation}/{relativeTo}" : Documentation);
        if (copyrightLink)
        {
            folder = Path.GetDirectoryName(folder) ?? "";
        }
        return Path.GetDirectoryName(folder) == Documentation ? Path.GetFileName(folder) : null;
    }

    /// <summary>HEAD's commit of the makina-states clone stage2 made, when there is one.</summary>
    private static async Task<string?> ReadMakinaStatesCommitAsync(DockerEngine engine, string containerId, CancellationToken cancellationToken)
    {
        var head = (await ReadTextAsync(engine, containerId, $"{MakinaStatesGit}/HEAD", cancellationToken).ConfigureAwait(false))?.Trim();
        if (head is null || !head.StartsWith("ref: ", StringComparison.Ordinal))
        {
            return IsCommit(head) ? head : null;
        }
        var reference = head["ref: ".Length..].Trim();
        var loose = (await ReadTextAsync(engine, containerId, $"{MakinaStatesGit}/{reference}", cancellationToken).ConfigureAwait(false))?.Trim();
        if (IsCommit(loose))
        {
            return loose;
        }
        var packed = await ReadTextAsync(engine, containerId, $"{MakinaStatesGit}/packed-refs", cancellationToken).ConfigureAwait(false) ?? "";
        return packed.Split('\n').Select(l => l.Trim().Split(' ')).Where(p => p.Length == 2 && p[1] == reference && IsCommit(p[0])).Select(p => p[0]).FirstOrDefault();
    }

    private static bool IsCommit(string? value) => value is { Length: 40 or 64 } && value.All(char.IsAsciiHexDigitLower);

    private static async Task ReadArchiveAsync(DockerEngine engine, string containerId, string path, Func<LayerTarReader, LayerTarReader.Entry, Task> onEntry,
        CancellationToken cancellationToken)
    {
        var copy = new MemoryStream();
        try
        {
            var response = await engine.Client.Containers.GetArchiveFromContainerAsync(containerId,
                new ContainerPathStatParameters { Path = path }, statOnly: false, cancellationToken).ConfigureAwait(false);
            // Read to its end in one go first: the engine's chunked stream fails under a tar reader's small reads
            // (see Stage0Builder). The folders read here are some megabytes.
            await using var stream = response.Stream!;
            await stream.CopyToAsync(copy, 1 << 20, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (DockerEngine.IsGone(e))
        {
            // Docker.DotNet maps every 404 of this call to "container not found": here it is a path the image lacks.
            return;
        }
        copy.Position = 0;
        await using var archive = copy;
        var reader = new LayerTarReader(archive);
        while (await reader.NextAsync(cancellationToken).ConfigureAwait(false) is { } entry)
        {
            await onEntry(reader, entry).ConfigureAwait(false);
        }
    }

    private static async Task<string> ReadContentAsync(LayerTarReader reader, CancellationToken cancellationToken)
    {
        using var text = new StreamReader(reader.Content, Encoding.UTF8);
        return await text.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
    }
}
