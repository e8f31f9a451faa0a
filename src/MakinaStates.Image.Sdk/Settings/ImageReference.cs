using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>A Docker image reference split into repository and tag, validated with the engine's own grammar.</summary>
public sealed partial record ImageReference(string Repository, string? Tag)
{
    // distribution/reference: lowercase path components, an optional registry host[:port], an optional tag.
    [GeneratedRegex(@"^(?:(?<host>[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)/)?" +
                    @"(?<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)" +
                    @"(?::(?<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$")]
    private static partial Regex Grammar();

    public static ImageReference Parse(string? value, string settingName)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new ImageBuildException(MsiCodes.ImageMissing,
                MsiMessages.Format("ImageMissing", settingName, settingName, settingName, settingName));
        }

        var match = Grammar().Match(value);
        // A first component without '.', ':' or "localhost" is a path, not a registry host (docker's rule).
        if (match.Success && match.Groups["host"].Success)
        {
            var host = match.Groups["host"].Value;
            if (!host.Contains('.') && !host.Contains(':') && host != "localhost" && host != host.ToLowerInvariant())
            {
                match = Match.Empty;
            }
        }
        if (!match.Success)
        {
            throw new ImageBuildException(MsiCodes.ImageInvalid,
                MsiMessages.Format("ImageInvalid", settingName, value));
        }

        var repository = match.Groups["host"].Success ? $"{match.Groups["host"].Value}/{match.Groups["path"].Value}" : match.Groups["path"].Value;
        return new ImageReference(repository, match.Groups["tag"].Success ? match.Groups["tag"].Value : null);
    }

    public string WithTag(string tag) => $"{Repository}:{tag}";

    /// <summary>The project's stage1 image (what stage1.sh made of the base), shared by its builds.</summary>
    public string Stage1 => $"{Repository}-stage1:latest";

    /// <summary>The registry host[:port] the repository names, or null (docker's rule: a '.', a ':' or localhost).</summary>
    public string? Registry => Repository.IndexOf('/') is > 0 and var slash && Repository[..slash] is var first
        && (first.Contains('.') || first.Contains(':') || first == "localhost") ? first : null;

    /// <summary>The repository without its registry host: the path a registry stores it under.</summary>
    public string PathInRegistry => Registry is { } registry ? Repository[(registry.Length + 1)..] : Repository;

    /// <summary>Splits "repo[:tag]" (a registry port is not a tag); the tag defaults to latest.</summary>
    public static (string Repository, string Tag) SplitTag(string reference)
    {
        var colon = reference.LastIndexOf(':');
        return colon > reference.LastIndexOf('/') ? (reference[..colon], reference[(colon + 1)..]) : (reference, "latest");
    }

    public override string ToString() => Tag is null ? Repository : $"{Repository}:{Tag}";
}
