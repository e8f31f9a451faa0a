using System.Security.Cryptography;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Scripts;

/// <summary>
/// Picks the effective copy of each stage script (stage0.sh..stage3.sh, Dockerfile.stage0 and the small files they
/// install), highest first: .salt/ (corpus projects) > image_rootfs/bootstrap_scripts/ >
/// injected_volumes/bootstrap_scripts/ > MsStagePath > the SDK's stage-scripts/.
/// </summary>
public sealed class StageScriptResolver(string imageDirectory, string? stagePath, string sdkScriptsDirectory)
{
    /// <summary>Where Stage0 records the copies it wrote, so they are not mistaken for user overrides later.</summary>
    public const string GeneratedManifestName = ".makinastates-generated";

    /// <param name="Normalized">The source had CRLF line endings; the placed copy has LF (bash cannot run CRLF scripts).</param>
    public sealed record ResolvedScript(string Name, string Path, string Origin, bool Normalized = false);

    public string BootstrapScriptsDirectory => System.IO.Path.Combine(imageDirectory, "injected_volumes", "bootstrap_scripts");

    public bool IsCorpusProject =>
        Directory.Exists(System.IO.Path.Combine(imageDirectory, ".salt")) && System.IO.Path.Exists(System.IO.Path.Combine(imageDirectory, ".git"));

    public IReadOnlyList<ResolvedScript> ResolveAll()
    {
        if (!Directory.Exists(sdkScriptsDirectory))
        {
            throw new ImageBuildException(MsiCodes.StageScriptMissing, MsiMessages.Format("StageScriptMissing", sdkScriptsDirectory), sdkScriptsDirectory);
        }
        // The SDK's files, plus the user's own helper scripts beside their overrides (e.g. a selfcheck.sh hook).
        var sdkNames = Directory.GetFiles(sdkScriptsDirectory).Select(System.IO.Path.GetFileName).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var userNames = Candidates().Where(c => c.Directory != sdkScriptsDirectory && Directory.Exists(c.Directory))
            .SelectMany(c => Directory.GetFiles(c.Directory, "*.sh")).Select(System.IO.Path.GetFileName).OfType<string>();
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
                // Temp name then rename: a reader never sees a half-written script.
                var temporary = destination + ".tmp";
                File.WriteAllBytes(temporary, content);
                File.Move(temporary, destination, overwrite: true);
            }
            if (script.Name.EndsWith(".sh", StringComparison.Ordinal) && !OperatingSystem.IsWindows())
            {
                // A script checked out without its run bit still runs (and is runnable in the image).
                File.SetUnixFileMode(destination, File.GetUnixFileMode(destination) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            }
            manifest.Add($"{script.Name} {Hash(destination)}");
            placed.Add(script with { Path = destination, Normalized = normalized });
        }
        // Copies placed by an earlier build whose source is gone are removed: they would still be uploaded and run.
        foreach (var stale in ReadGeneratedManifest().Keys.Except(placed.Select(p => p.Name), StringComparer.Ordinal))
        {
            File.Delete(System.IO.Path.Combine(BootstrapScriptsDirectory, stale));
        }
        File.WriteAllLines(System.IO.Path.Combine(BootstrapScriptsDirectory, GeneratedManifestName), manifest);
        return placed;
    }

    private IEnumerable<(string Directory, string Origin)> Candidates()
    {
        if (IsCorpusProject)
        {
            yield return (System.IO.Path.Combine(imageDirectory, ".salt"), ".salt/");
        }
        yield return (System.IO.Path.Combine(imageDirectory, "image_rootfs", "bootstrap_scripts"), "image_rootfs/bootstrap_scripts/");
        yield return (BootstrapScriptsDirectory, "injected_volumes/bootstrap_scripts/");
        if (!string.IsNullOrWhiteSpace(stagePath))
        {
            yield return (stagePath, "MsStagePath");
        }
        yield return (sdkScriptsDirectory, "the SDK's stage-scripts/");
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
