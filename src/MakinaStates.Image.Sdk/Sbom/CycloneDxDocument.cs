using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>A Debian package of the image with the license its copyright file names, if it names one.</summary>
public sealed record DebianComponent(DpkgPackage Package, string? License);

/// <summary>A NuGet package that went into the image.</summary>
public sealed record NuGetComponent(string Id, string Version);

/// <summary>The image's operating system, from its os-release (ID, VERSION_ID, PRETTY_NAME) and how its base was made.</summary>
public sealed record OperatingSystemComponent(string Name, string Version, string? Description, IReadOnlyList<KeyValuePair<string, string>> Properties);

/// <summary>
/// A CycloneDX 1.6 JSON bill of materials for one built image. The same inputs make the same bytes: fixed key order,
/// components sorted by bom-ref, a serial number derived from the image id, and no clock but the epoch given.
/// </summary>
public static class CycloneDxDocument
{
    public const string ToolName = "MakinaStates.Image.Sdk";

    // RFC 9562 name-based UUIDs need a namespace; this one is the SDK's own (a fixed random value), so the serial
    // numbers it derives cannot collide with another tool's UUIDv5 of the same image id.
    private static readonly Guid SerialNamespace = new("6f1e9a43-2c57-4b8e-9d0a-7e35c1b2f486");

    // The exact SPDX ids that Debian short names share; any other name (GPL-2+, BSD-3-clause, Expat, ...) is
    // written as an expression, which CycloneDX takes as it is.
    private static readonly HashSet<string> SpdxIds = new(StringComparer.Ordinal)
    {
        "0BSD", "Apache-2.0", "Artistic-2.0", "BSL-1.0", "CC0-1.0", "ISC", "MIT", "MPL-2.0", "OpenSSL", "Zlib",
    };

    public static string ToolVersion { get; } = ReadToolVersion();

    /// <param name="imageName">The image's name (repository and tag as the build names it).</param>
    /// <param name="imageId">The image id (sha256:...): the BOM's subject version, and the seed of its serial number.</param>
    /// <param name="debianRelease">The release codename or number for the purls' distro qualifier; none when null.</param>
    /// <param name="epoch">The time of the BOM (the build's SOURCE_DATE_EPOCH); no timestamp when null.</param>
    /// <param name="imageProperties">What else names the image's inputs (the base tarball, the corpus and makina-states commits).</param>
    /// <param name="operatingSystem">The image's OS, as a component of its own.</param>
    public static byte[] Create(string imageName, string imageId, IEnumerable<DebianComponent> debian, IEnumerable<NuGetComponent> nuget,
        string? debianRelease = null, DateTimeOffset? epoch = null, string? toolVersion = null,
        IReadOnlyList<KeyValuePair<string, string>>? imageProperties = null, OperatingSystemComponent? operatingSystem = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(imageName);
        ArgumentException.ThrowIfNullOrEmpty(imageId);
        var components = debian.Select(d => (Ref: DebianPurl(d.Package, debianRelease), Debian: (DebianComponent?)d, NuGet: (NuGetComponent?)null))
            .Concat(nuget.Select(n => (Ref: NuGetPurl(n), Debian: (DebianComponent?)null, NuGet: (NuGetComponent?)n)))
            // bom-refs are unique within a BOM: a package given twice is one component.
            .DistinctBy(c => c.Ref, StringComparer.Ordinal)
            .OrderBy(c => c.Ref, StringComparer.Ordinal)
            .ToArray();

        using var buffer = new MemoryStream();
        // Relaxed: "+" and "&" stay readable in versions and purls; the bytes still parse the same.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, NewLine = "\n", Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("bomFormat", "CycloneDX");
            json.WriteString("specVersion", "1.6");
            json.WriteString("serialNumber", SerialNumber(imageId));
            json.WriteNumber("version", 1);

            json.WriteStartObject("metadata");
            if (epoch is { } time)
            {
                json.WriteString("timestamp", time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
            }
            json.WriteStartObject("tools");
            json.WriteStartArray("components");
            json.WriteStartObject();
            json.WriteString("type", "application");
            json.WriteString("name", ToolName);
            json.WriteString("version", toolVersion ?? ToolVersion);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteStartObject("component");
            json.WriteString("type", "container");
            json.WriteString("bom-ref", imageId);
            json.WriteString("name", imageName);
            json.WriteString("version", imageId);
            // The image id is the SHA-256 of the image's config: what every engine and registry names the image by.
            if (imageId.StartsWith("sha256:", StringComparison.Ordinal))
            {
                json.WriteStartArray("hashes");
                json.WriteStartObject();
                json.WriteString("alg", "SHA-256");
                json.WriteString("content", imageId["sha256:".Length..]);
                json.WriteEndObject();
                json.WriteEndArray();
            }
            WriteProperties(json, imageProperties ?? []);
            json.WriteEndObject();
            json.WriteEndObject();

            json.WriteStartArray("components");
            if (operatingSystem is { } os)
            {
                // First, as its bom-ref ("os:...") sorts before every purl ("pkg:...").
                json.WriteStartObject();
                json.WriteString("type", "operating-system");
                json.WriteString("bom-ref", $"os:{os.Name}@{os.Version}");
                json.WriteString("name", os.Name);
                json.WriteString("version", os.Version);
                if (!string.IsNullOrWhiteSpace(os.Description))
                {
                    json.WriteString("description", os.Description);
                }
                WriteProperties(json, os.Properties);
                json.WriteEndObject();
            }
            foreach (var (bomRef, debianComponent, nugetComponent) in components)
            {
                json.WriteStartObject();
                json.WriteString("type", "library");
                json.WriteString("bom-ref", bomRef);
                if (debianComponent is { Package: var package, License: var license })
                {
                    json.WriteString("name", package.Name);
                    json.WriteString("version", package.Version);
                    json.WriteString("purl", bomRef);
                    if (!string.IsNullOrWhiteSpace(license))
                    {
                        WriteLicense(json, license.Trim());
                    }
                    json.WriteStartArray("properties");
                    WriteProperty(json, "debian:source", package.SourceName);
                    WriteProperty(json, "debian:source-version", package.SourceVersion);
                    json.WriteEndArray();
                }
                else if (nugetComponent is { } n)
                {
                    json.WriteString("name", n.Id);
                    json.WriteString("version", n.Version);
                    json.WriteString("purl", bomRef);
                }
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>pkg:deb/debian/name@version?arch=...[&amp;distro=debian-release], with name, version and qualifier
    /// values percent-encoded (an epoch's ":" and a "+" in a version or name are not left bare).</summary>
    public static string DebianPurl(DpkgPackage package, string? debianRelease)
    {
        var purl = $"pkg:deb/debian/{Encode(package.Name)}@{Encode(package.Version)}?arch={Encode(package.Architecture)}";
        return string.IsNullOrWhiteSpace(debianRelease) ? purl : $"{purl}&distro={Encode("debian-" + debianRelease.Trim())}";
    }

    public static string NuGetPurl(NuGetComponent package) => $"pkg:nuget/{Encode(package.Id)}@{Encode(package.Version)}";

    /// <summary>A UUIDv5 of the image id: stable for one image. The 1.6 schema's pattern takes any version digit
    /// (lowercase hex only), but its text asks for RFC 4122, which knows versions 1-5 and not the newer v8.</summary>
    public static string SerialNumber(string imageId)
    {
        Span<byte> name = stackalloc byte[16];
        SerialNamespace.TryWriteBytes(name, bigEndian: true, out _);
        var hash = SHA1.HashData([.. name, .. Encoding.UTF8.GetBytes(imageId)]);
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return "urn:uuid:" + new Guid(hash.AsSpan(0, 16), bigEndian: true).ToString("D");
    }

    private static void WriteLicense(Utf8JsonWriter json, string license)
    {
        json.WriteStartArray("licenses");
        json.WriteStartObject();
        if (SpdxIds.Contains(license))
        {
            json.WriteStartObject("license");
            json.WriteString("id", license);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("expression", license);
        }
        json.WriteEndObject();
        json.WriteEndArray();
    }

    private static void WriteProperties(Utf8JsonWriter json, IReadOnlyList<KeyValuePair<string, string>> properties)
    {
        if (properties.Count == 0)
        {
            return;
        }
        json.WriteStartArray("properties");
        foreach (var (name, value) in properties)
        {
            WriteProperty(json, name, value);
        }
        json.WriteEndArray();
    }

    private static void WriteProperty(Utf8JsonWriter json, string name, string value)
    {
        json.WriteStartObject();
        json.WriteString("name", name);
        json.WriteString("value", value);
        json.WriteEndObject();
    }

    // Uri.EscapeDataString leaves only RFC 3986 unreserved characters bare, which is what purl requires of a version.
    private static string Encode(string value) => Uri.EscapeDataString(value);

    private static string ReadToolVersion()
    {
        var assembly = typeof(CycloneDxDocument).Assembly;
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        // The "+commit" the SDK appends would make every commit's BOM differ for the same package version.
        return informational?.Split('+')[0] ?? assembly.GetName().Version?.ToString() ?? "0.0.0";
    }
}
