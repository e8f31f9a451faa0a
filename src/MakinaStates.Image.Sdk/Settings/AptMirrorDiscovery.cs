namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// Finds the Debian mirror the build host itself uses, so no mirror host is ever written into a project:
/// reads /etc/apt/sources.list (one-line format) and sources.list.d/*.list and *.sources (deb822).
/// </summary>
public static class AptMirrorDiscovery
{
    /// <summary>
    /// The "deb" source that serves <paramref name="release"/> itself (not -security/-updates), or null. Third-party
    /// repositories also name the release (e.g. a vendor's "bookworm main"): a source with the main component whose
    /// path ends in /<paramref name="os"/> is preferred, then any with main, then the first.
    /// </summary>
    public static string? FindMirror(string release, string aptRoot = "/etc/apt", string os = "debian")
    {
        var candidates = ReadSources(aptRoot).Where(s => s.Type == "deb" && s.Suites.Contains(release, StringComparer.Ordinal)).ToList();
        var best = candidates.FirstOrDefault(s => s.Components.Contains("main") && s.Uri.TrimEnd('/').EndsWith("/" + os, StringComparison.Ordinal))
            ?? candidates.FirstOrDefault(s => s.Components.Contains("main"))
            ?? candidates.FirstOrDefault();
        return best?.Uri.TrimEnd('/');
    }

    internal sealed record AptSource(string Type, string Uri, IReadOnlyList<string> Suites, IReadOnlyList<string> Components);

    internal static IEnumerable<AptSource> ReadSources(string aptRoot)
    {
        var files = new List<string>();
        var main = Path.Combine(aptRoot, "sources.list");
        if (File.Exists(main))
        {
            files.Add(main);
        }
        var dir = Path.Combine(aptRoot, "sources.list.d");
        if (Directory.Exists(dir))
        {
            // apt reads only these two extensions; "*.disabled" and the like are ignored, as apt does.
            files.AddRange(Directory.GetFiles(dir).Where(f => f.EndsWith(".list", StringComparison.Ordinal) || f.EndsWith(".sources", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        }

        foreach (var file in files)
        {
            var text = File.ReadAllText(file);
            var sources = file.EndsWith(".sources", StringComparison.Ordinal) ? ParseDeb822(text) : ParseOneLine(text);
            foreach (var source in sources)
            {
                yield return source;
            }
        }
    }

    internal static IEnumerable<AptSource> ParseOneLine(string text)
    {
        foreach (var raw in text.Split('\n'))
        {
            var line = StripComment(raw).Trim();
            if (line.Length == 0)
            {
                continue;
            }
            // deb [ option=value ... ] uri suite [component ...]
            var withoutOptions = line;
            var open = line.IndexOf('[');
            if (open >= 0 && line.IndexOf(']', open) is var close and > 0)
            {
                withoutOptions = line[..open] + line[(close + 1)..];
            }
            var words = withoutOptions.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length >= 3)
            {
                yield return new AptSource(words[0], words[1], [words[2]], words[3..]);
            }
        }
    }

    internal static IEnumerable<AptSource> ParseDeb822(string text)
    {
        foreach (var paragraph in text.Replace("\r\n", "\n").Split("\n\n"))
        {
            var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            string? last = null;
            foreach (var raw in paragraph.Split('\n'))
            {
                if (raw.StartsWith('#') || raw.Trim().Length == 0)
                {
                    continue;
                }
                if ((raw.StartsWith(' ') || raw.StartsWith('\t')) && last is not null)
                {
                    fields[last] += " " + raw.Trim();
                    continue;
                }
                var colon = raw.IndexOf(':');
                if (colon > 0)
                {
                    last = raw[..colon].Trim();
                    fields[last] = raw[(colon + 1)..].Trim();
                }
            }
            if (fields.TryGetValue("Enabled", out var enabled) && enabled.Equals("no", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            if (!fields.TryGetValue("Types", out var types) || !fields.TryGetValue("URIs", out var uris) || !fields.TryGetValue("Suites", out var suites))
            {
                continue;
            }
            var suiteList = suites.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            var components = fields.TryGetValue("Components", out var c) ? c.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) : [];
            foreach (var type in types.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            {
                foreach (var uri in uris.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
                {
                    yield return new AptSource(type, uri, suiteList, components);
                }
            }
        }
    }

    private static string StripComment(string line)
    {
        var hash = line.IndexOf('#');
        return hash >= 0 ? line[..hash] : line;
    }
}
