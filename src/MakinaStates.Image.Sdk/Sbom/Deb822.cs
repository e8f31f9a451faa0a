namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>
/// The control-file syntax that dpkg's status database and machine-readable copyright files share: paragraphs
/// separated by blank lines, "Field: value" lines, and continuation lines that start with a space or a tab.
/// </summary>
internal static class Deb822
{
    /// <returns>Each paragraph's fields by name (case-insensitive, as dpkg reads them); a multi-line value keeps its
    /// lines joined by "\n", the first one being what follows the colon.</returns>
    public static IEnumerable<IReadOnlyDictionary<string, string>> Paragraphs(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string? last = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0)
            {
                if (fields.Count > 0)
                {
                    yield return fields;
                    fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                }
                last = null;
                continue;
            }
            if (line[0] is ' ' or '\t')
            {
                if (last is not null)
                {
                    fields[last] = fields[last] + "\n" + line.Trim();
                }
                continue;
            }
            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                // Not a field (a stray line in a hand-edited file): nothing to continue either.
                last = null;
                continue;
            }
            var name = line[..colon].Trim();
            // The first occurrence wins, so a repeated field cannot silently replace what was read.
            if (fields.TryAdd(name, line[(colon + 1)..].Trim()))
            {
                last = name;
            }
            else
            {
                last = null;
            }
        }
        if (fields.Count > 0)
        {
            yield return fields;
        }
    }
}
