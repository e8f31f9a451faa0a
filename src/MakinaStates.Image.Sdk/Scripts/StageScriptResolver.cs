using System.Security.Cryptography;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Scripts;

/// <summary>
/// Picks the effective copy of each file of the bootstrap scripts folders (stage0.sh..stage3.sh, Dockerfile.stage0,
/// the small files they install, and the user's helpers and data at any depth, dotfiles included), file by file,
/// highest first: .salt/ (corpus projects) > image_rootfs/bootstrap_scripts/ > injected_volumes/bootstrap_scripts/ >
/// MsStagePath > the SDK's stage-scripts/. Names are paths relative to those folders, with '/'.
/// </summary>
public sealed class StageScriptResolver(string imageDirectory, string? stagePath, string sdkScriptsDirectory)
{
    /// <summary>Where Stage0 records the copies it wrote, so they are not mistaken for user overrides later.</summary>
    public const string GeneratedManifestName = ".makinastates-generated";

    /// <param name="Normalized">The source had CRLF line endings; the placed copy has LF (bash cannot run CRLF scripts).</param>
    public sealed record ResolvedScript(string Name, string Path, string Origin, bool Normalized = false);

    public string BootstrapScriptsDirectory => System.IO.Path.Combine(imageDirectory, "injected_volumes", "bootstrap_scripts");

    public bool IsCorpusProject => HasSaltFolder && System.IO.Path.Exists(System.IO.Path.Combine(imageDirectory, ".git"));

    /// <summary>A .salt/ folder in an image dir that is not the root of a git clone: ignored, and Stage0 says why.</summary>
    public bool HasSaltWithoutGit => HasSaltFolder && !IsCorpusProject;

    private bool HasSaltFolder => Directory.Exists(System.IO.Path.Combine(imageDirectory, ".salt"));

    public IReadOnlyList<ResolvedScript> ResolveAll()
    {
        if (!Directory.Exists(sdkScriptsDirectory))
        {
            throw new ImageBuildException(MsiCodes.StageScriptMissing, MsiMessages.Format("StageScriptMissing", sdkScriptsDirectory), sdkScriptsDirectory);
        }
        var sdkNames = Files(sdkScriptsDirectory).Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        var userNames = Candidates().Where(c => c.Directory != sdkScriptsDirectory).SelectMany(c => Files(c.Directory)).Select(f => f.Name);
        var resolved = new List<ResolvedScript>();
        foreach (var name in sdkNames.Concat(userNames).Distinct().Order(StringComparer.Ordinal))
        {
            try
            {
                resolved.Add(Resolve(name));
            }
            catch (ImageBuildException) when (!sdkNames.Contains(name))
            {
                // Only our own earlier copy is left (its source was removed): it is dropped, not used.
            }
        }
        return resolved;
    }

    /// <summary>
    /// Every file under <paramref name="directory"/> at any depth (dotfiles included, links followed as files), as
    /// (name relative to it with '/', full path), in ordinal order; Stage0's manifest and half-written copies left out.
    /// </summary>
    public static IEnumerable<(string Name, string Path)> Files(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        return Directory.EnumerateFiles(directory, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(path => (Name: System.IO.Path.GetRelativePath(directory, path).Replace('\\', '/'), Path: path))
            .Where(f => f.Name != GeneratedManifestName && !Concurrency.AtomicFile.IsTemporary(f.Name))
            .OrderBy(f => f.Name, StringComparer.Ordinal);
    }

    public ResolvedScript Resolve(string name)
    {
        var generated = ReadGeneratedManifest();
        foreach (var (directory, origin) in Candidates())
        {
            var path = System.IO.Path.Combine(directory, name);
            if (!File.Exists(path))
            {
                continue;
            }
            // Our own earlier copy in injected_volumes/bootstrap_scripts is not an override.
            if (directory == BootstrapScriptsDirectory && generated.TryGetValue(name, out var hash) && hash == Hash(path))
            {
                continue;
            }
            return new ResolvedScript(name, path, origin);
        }
        throw new ImageBuildException(MsiCodes.StageScriptMissing,
            MsiMessages.Format("StageScriptMissing_2", name));
    }

    /// <summary>
    /// Lays the effective scripts into injected_volumes/bootstrap_scripts/ (the seed's layout), writing only the
    /// files whose content differs, and records what it wrote.
    /// </summary>
    public IReadOnlyList<ResolvedScript> PlaceEffectiveScripts(IReadOnlyList<ResolvedScript> scripts)
    {
        Directory.CreateDirectory(BootstrapScriptsDirectory);
        var placed = new List<ResolvedScript>();
        var manifest = new List<string>();
        foreach (var script in scripts)
        {
            var destination = System.IO.Path.Combine(BootstrapScriptsDirectory, script.Name);
            var content = File.ReadAllBytes(script.Path);
            var normalized = false;
            if (script.Name.EndsWith(".sh", StringComparison.Ordinal) && content.AsSpan().IndexOf("\r\n"u8) >= 0)
            {
                content = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(content).Replace("\r\n", "\n"));
                normalized = true;
            }
            if (!File.Exists(destination) || !File.ReadAllBytes(destination).AsSpan().SequenceEqual(content))
            {
                // A reader never sees a half-written script.
                Concurrency.AtomicFile.WriteAllBytes(destination, content);
            }
            if (!OperatingSystem.IsWindows() && (script.Name.EndsWith(".sh", StringComparison.Ordinal) || (script.Origin != SdkOrigin && IsExecutable(script.Path))))
            {
                // A script checked out without its run bit still runs (and is runnable in the image); a user's helper
                // program keeps its run bit (the SDK's files all have one once NuGet extracted them).
                File.SetUnixFileMode(destination, File.GetUnixFileMode(destination) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            }
            // Only the copies Stage0 wrote are ours; a user's file in injected_volumes/bootstrap_scripts/ stays theirs.
            if (script.Origin != InjectedVolumesOrigin)
            {
                manifest.Add($"{script.Name} {Hash(destination)}");
            }
            placed.Add(script with { Path = destination, Normalized = normalized });
        }
        // Copies placed by an earlier build whose source is gone are removed: they would still be uploaded and run.
        foreach (var stale in ReadGeneratedManifest().Keys.Except(placed.Select(p => p.Name), StringComparer.Ordinal))
        {
            var path = System.IO.Path.Combine(BootstrapScriptsDirectory, stale);
            File.Delete(path);
            RemoveEmptyParents(path);
        }
        File.WriteAllLines(System.IO.Path.Combine(BootstrapScriptsDirectory, GeneratedManifestName), manifest);
        return placed;
    }

    /// <summary>
    /// The placed files stage1.sh may use, by name: its build key's scripts. Every placed file but those of the other
    /// stages, except that a corpus project's .salt/ gives only stage1's own files (those the SDK's stage-scripts/
    /// also has) and shell scripts (a .salt/stage1.sh may source them): the rest of .salt/ is the project's pillars,
    /// states and data, deployed with its commit in stage2, so editing them must not remake stage1. They are in the
    /// candidate's inputs key with every other placed file.
    /// </summary>
    public IReadOnlyList<string> UsedByStage1(IReadOnlyList<ResolvedScript> placed)
    {
        var sdkNames = Files(sdkScriptsDirectory).Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        return [.. placed.Where(s => !NotUsedByStage1.Contains(s.Name)
                && (s.Origin != SaltOrigin || sdkNames.Contains(s.Name) || s.Name.EndsWith(".sh", StringComparison.Ordinal)))
            .Select(s => s.Name)];
    }

    /// <summary>
    /// Placed files that stage1.sh does not run: the base's own (in the key by the base image) and the later stages'.
    /// </summary>
    private static readonly HashSet<string> NotUsedByStage1 = new(StringComparer.Ordinal)
    {
        "stage0.sh", "Dockerfile.stage0", "stage2.sh", "stage3.sh", "snapshot.sh", "save-acls.sh", "selfcheck.sh",
    };

    /// <summary>
    /// What Stage0 itself wrote into the image dir: its copies of the scripts (not a user's own file in
    /// injected_volumes/bootstrap_scripts/) and the manifest recording them.
    /// </summary>
    public IEnumerable<string> WrittenByStage0() =>
        ReadGeneratedManifest().Keys.Select(name => System.IO.Path.Combine(BootstrapScriptsDirectory, name))
            .Append(System.IO.Path.Combine(BootstrapScriptsDirectory, GeneratedManifestName));

    private const string SaltOrigin = ".salt/";
    private const string InjectedVolumesOrigin = "injected_volumes/bootstrap_scripts/";
    private const string SdkOrigin = "the SDK's stage-scripts/";

    private static bool IsExecutable(string path) => !OperatingSystem.IsWindows() &&
        (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    private void RemoveEmptyParents(string path)
    {
        var root = System.IO.Path.TrimEndingDirectorySeparator(BootstrapScriptsDirectory);
        for (var dir = System.IO.Path.GetDirectoryName(path); dir is not null && dir.Length > root.Length && dir.StartsWith(root, StringComparison.Ordinal);
             dir = System.IO.Path.GetDirectoryName(dir))
        {
            if (Directory.EnumerateFileSystemEntries(dir).Any())
            {
                break;
            }
            Directory.Delete(dir);
        }
    }

    private IEnumerable<(string Directory, string Origin)> Candidates()
    {
        if (IsCorpusProject)
        {
            yield return (System.IO.Path.Combine(imageDirectory, ".salt"), SaltOrigin);
        }
        yield return (System.IO.Path.Combine(imageDirectory, "image_rootfs", "bootstrap_scripts"), "image_rootfs/bootstrap_scripts/");
        yield return (BootstrapScriptsDirectory, InjectedVolumesOrigin);
        if (!string.IsNullOrWhiteSpace(stagePath))
        {
            yield return (stagePath, "MsStagePath");
        }
        yield return (sdkScriptsDirectory, SdkOrigin);
    }

    private Dictionary<string, string> ReadGeneratedManifest()
    {
        var path = System.IO.Path.Combine(BootstrapScriptsDirectory, GeneratedManifestName);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (File.Exists(path))
        {
            foreach (var line in File.ReadAllLines(path))
            {
                var space = line.LastIndexOf(' ');
                if (space > 0)
                {
                    result[line[..space]] = line[(space + 1)..];
                }
            }
        }
        return result;
    }

    internal static string Hash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
