using System.Security.Cryptography;
using System.Text;

namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>
/// The license of each Debian package of an image, with the hash of the dpkg status they were read for, kept beside
/// the image's SBOM (<c>sbom.cdx.json.licenses</c>). A rebuild that changed no package (an injected file, stage3.sh)
/// has the same status: its SBOM takes these instead of reading every copyright file again, a 10 MB archive of
/// /usr/share/doc and its parse (about 0.3 s of a 0.7 s SBOM). A package's copyright file is the package's: it changes
/// when the package does, and then the status does too.
/// </summary>
public sealed class DebianLicenses
{
    private readonly Dictionary<string, string?> _byPackage;

    private DebianLicenses(string statusHash, Dictionary<string, string?> byPackage)
    {
        StatusHash = statusHash;
        _byPackage = byPackage;
    }

    public string StatusHash { get; }

    public static string HashOf(string dpkgStatus) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(dpkgStatus)));

    /// <summary>Each package's license expression, from the copyright files read from the image.</summary>
    public static DebianLicenses From(string dpkgStatus, IReadOnlyDictionary<string, string> copyrightByPackage) =>
        new(HashOf(dpkgStatus), DpkgStatus.Parse(dpkgStatus).DistinctBy(p => p.Name).ToDictionary(p => p.Name,
            p => copyrightByPackage.TryGetValue(p.Name, out var text) ? DebianCopyright.LicenseExpression(text) : null, StringComparer.Ordinal));

    public string? Of(string package) => _byPackage.GetValueOrDefault(package);

    /// <summary>The licenses kept at <paramref name="path"/>, or null (none, or unreadable: they are read again).</summary>
    public static DebianLicenses? Load(string path)
    {
        try
        {
            var lines = File.ReadAllLines(path);
            if (lines.Length == 0)
            {
                return null;
            }
            var byPackage = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var line in lines.Skip(1))
            {
                var (package, license) = line.Split('\t', 2) is [var p, var l] ? (p, l) : (line, "");
                byPackage[package] = license.Length == 0 ? null : license;
            }
            return new DebianLicenses(lines[0], byPackage);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public void Save(string path) =>
        Concurrency.AtomicFile.WriteAllLines(path, [StatusHash, .. _byPackage.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}\t{p.Value}")]);
}
