namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>
/// The license of a Debian package from its /usr/share/doc/&lt;package&gt;/copyright, only when that file is
/// machine-readable (copyright-format 1.0). A free-text copyright file gives nothing: guessing a license from prose
/// would put a claim in the bill of materials that nobody made.
/// </summary>
public static class DebianCopyright
{
    private const string FormatUrl = "://www.debian.org/doc/packaging-manuals/copyright-format/1.0";

    /// <returns>The License short names (Debian's, e.g. "GPL-2+ or Artistic") of the "Files: *" paragraph, else of
    /// the first Files paragraph that has a License; null when the file is not machine-readable or names none.</returns>
    public static string? LicenseExpression(string text)
    {
        if (!IsMachineReadable(text))
        {
            return null;
        }
        string? first = null;
        foreach (var fields in Deb822.Paragraphs(text))
        {
            if (!fields.TryGetValue("Files", out var files) || ShortNames(fields) is not { } license)
            {
                continue;
            }
            if (files.Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries) is ["*"])
            {
                return license;
            }
            first ??= license;
        }
        return first;
    }

    private static bool IsMachineReadable(string text)
    {
        var end = text.IndexOf('\n');
        var line = (end < 0 ? text : text[..end]).Trim();
        if (!line.StartsWith("Format:", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var url = line["Format:".Length..].Trim().TrimEnd('/');
        // Files written before Debian moved to https still name the http address of the same format.
        return url is "https" + FormatUrl or "http" + FormatUrl;
    }

    /// <summary>The first line of License is the short names; the lines after it are the license's text.</summary>
    private static string? ShortNames(IReadOnlyDictionary<string, string> fields)
    {
        if (!fields.TryGetValue("License", out var license))
        {
            return null;
        }
        var end = license.IndexOf('\n');
        var names = (end < 0 ? license : license[..end]).Trim();
        return names.Length > 0 ? names : null;
    }
}
