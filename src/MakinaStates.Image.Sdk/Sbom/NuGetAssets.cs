using System.Text.Json;

namespace MakinaStates.Image.Sdk.Sbom;

/// <summary>
/// The NuGet packages an app project was published with, from its restore's project.assets.json: the packages of the
/// target for the runtime it was published for (or of every target when it has none for that runtime), and the runtime
/// packs of its framework references, which a self-contained publish copies into the image.
/// </summary>
public static class NuGetAssets
{
    public static IReadOnlyList<NuGetComponent> Read(string assetsJson, string? runtimeIdentifier)
    {
        using var document = JsonDocument.Parse(assetsJson);
        var root = document.RootElement;
        var packages = new List<NuGetComponent>();
        if (root.TryGetProperty("targets", out var targets))
        {
            var all = targets.EnumerateObject().ToArray();
            var forRuntime = all.Where(t => !string.IsNullOrEmpty(runtimeIdentifier) && t.Name.EndsWith("/" + runtimeIdentifier, StringComparison.Ordinal)).ToArray();
            foreach (var target in forRuntime.Length > 0 ? forRuntime : all)
            {
                foreach (var library in target.Value.EnumerateObject())
                {
                    // "Name/Version"; projects (type "project") are the app's own code, not packages.
                    if (library.Value.TryGetProperty("type", out var type) && type.GetString() == "package" && library.Name.Split('/') is [var id, var version])
                    {
                        packages.Add(new NuGetComponent(id, version));
                    }
                }
            }
        }
        if (!string.IsNullOrEmpty(runtimeIdentifier) && root.TryGetProperty("project", out var project) && project.TryGetProperty("frameworks", out var frameworks))
        {
            foreach (var framework in frameworks.EnumerateObject())
            {
                var referenced = framework.Value.TryGetProperty("frameworkReferences", out var references)
                    ? references.EnumerateObject().Select(r => r.Name).ToHashSet(StringComparer.OrdinalIgnoreCase) : [];
                if (!framework.Value.TryGetProperty("downloadDependencies", out var downloads))
                {
                    continue;
                }
                foreach (var download in downloads.EnumerateArray())
                {
                    var name = download.GetProperty("name").GetString() ?? "";
                    var suffix = ".Runtime." + runtimeIdentifier;
                    // Microsoft.NETCore.App.Runtime.linux-x64 ships when Microsoft.NETCore.App is referenced; packs
                    // restored for other reasons (apphosts, crossgen) do not go into the image.
                    if (name.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && referenced.Contains(name[..^suffix.Length])
                        && ExactVersion(download.GetProperty("version").GetString()) is { } version)
                    {
                        packages.Add(new NuGetComponent(name, version));
                    }
                }
            }
        }
        return [.. packages.Distinct().OrderBy(p => p.Id, StringComparer.OrdinalIgnoreCase).ThenBy(p => p.Version, StringComparer.Ordinal)];
    }

    /// <summary>"[10.0.12, 10.0.12]" is 10.0.12; a range that is not one version names no package version.</summary>
    private static string? ExactVersion(string? range)
    {
        if (range is null)
        {
            return null;
        }
        var trimmed = range.Trim();
        if (!trimmed.StartsWith('['))
        {
            return trimmed.Length > 0 && !trimmed.Contains(',') ? trimmed : null;
        }
        var bounds = trimmed.Trim('[', ']').Split(',', StringSplitOptions.TrimEntries);
        return bounds is [var low, var high] && low == high && low.Length > 0 ? low : bounds is [var only] && only.Length > 0 ? only : null;
    }
}
