namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>One installed Debian package, as dpkg recorded it.</summary>
/// <param name="SourceName">The source package it was built from: its own name when dpkg records no Source.</param>
/// <param name="SourceVersion">The source's version: the binary's own when Source gives none (binNMUs and some
/// packages carry a different one).</param>
public sealed record DpkgPackage(string Name, string Version, string Architecture, string SourceName, string SourceVersion);

/// <summary>
/// The packages of a Debian root, read from the text of its /var/lib/dpkg/status. Only packages dpkg reports as
/// "install ok installed" are kept: removed packages leave config-files stanzas, and half-installed ones are not
/// what the image ships.
/// </summary>
public static class DpkgStatus
{
    /// <returns>The installed packages sorted by name then architecture; a Multi-Arch package installed for two
    /// architectures is two packages.</returns>
    public static IReadOnlyList<DpkgPackage> Parse(string text)
    {
        var packages = new Dictionary<(string Name, string Architecture), DpkgPackage>();
        foreach (var fields in Deb822.Paragraphs(text))
        {
            if (!fields.TryGetValue("Status", out var status) || !IsInstalled(status)
                || !fields.TryGetValue("Package", out var name) || name.Length == 0
                || !fields.TryGetValue("Version", out var version) || version.Length == 0)
            {
                continue;
            }
            // dpkg always records it for an installed package; "all" when a stanza somehow lacks it keeps the purl valid.
            var architecture = fields.TryGetValue("Architecture", out var arch) && arch.Length > 0 ? arch : "all";
            var (sourceName, sourceVersion) = ParseSource(fields.GetValueOrDefault("Source"), name, version);
            packages.TryAdd((name, architecture), new DpkgPackage(name, version, architecture, sourceName, sourceVersion));
        }
        return packages.Values
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ThenBy(p => p.Architecture, StringComparer.Ordinal)
            .ToArray();
    }

    private static bool IsInstalled(string status)
    {
        var words = status.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        return words is ["install", "ok", "installed"];
    }

    /// <summary>"Source: name" or "Source: name (version)".</summary>
    private static (string Name, string Version) ParseSource(string? source, string name, string version)
    {
        if (string.IsNullOrWhiteSpace(source))
        {
            return (name, version);
        }
        var open = source.IndexOf('(');
        if (open < 0)
        {
            return (source.Trim(), version);
        }
        var close = source.IndexOf(')', open + 1);
        var sourceName = source[..open].Trim();
        var sourceVersion = (close < 0 ? source[(open + 1)..] : source[(open + 1)..close]).Trim();
        return (sourceName.Length > 0 ? sourceName : name, sourceVersion.Length > 0 ? sourceVersion : version);
    }
}
