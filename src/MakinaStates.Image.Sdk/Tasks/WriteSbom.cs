using System.Globalization;
using System.Text.Json;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Sbom;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// After Stage3 (or an up-to-date Stage0): the candidate's bill of materials, CycloneDX 1.6 JSON, at the path Stage0
/// named (obj/msimage/&lt;arch&gt;/sbom.cdx.json). Its Debian packages come from the candidate itself (dpkg status,
/// copyright files, os-release), its NuGet packages from the app projects' assets files, the rest from the build
/// description. A file that already describes this candidate is kept: the same image gives the same bytes anyway.
/// </summary>
public sealed class WriteSbom : ImageBuildTask
{
    /// <summary>The MsImageCandidate item (ImageId metadata).</summary>
    [Required] public ITaskItem Candidate { get; set; } = null!;

    /// <summary>The referenced app projects' project.assets.json files (RuntimeIdentifier metadata: what they were published for).</summary>
    public ITaskItem[] AppAssetsFiles { get; set; } = [];

    /// <summary>The MsSbom item: the file, with ImageId, Platform, Format, SpecVersion and Components metadata; none with MsSbom=false.</summary>
    [Output] public ITaskItem[] Sbom { get; private set; } = [];

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        var path = Build.SbomPath;
        if (path.Length == 0)
        {
            return;
        }
        var imageId = Candidate.GetMetadata("ImageId");
        if (Describes(path, imageId) is { } kept)
        {
            Log.LogMessage(MessageImportance.Normal, "SBOM: {0} already describes {1} ({2} components); kept.", path, imageId, kept);
            Sbom = [Item(path, imageId, kept)];
            return;
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        byte[] document;
        int components;
        try
        {
            using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
            var licensesPath = path + ".licenses";
            var known = DebianLicenses.Load(licensesPath);
            var contents = await ImageContents.ReadAsync(engine, imageId, StageContainerLabels("sbom", Build.MsImage),
                status => known?.StatusHash != DebianLicenses.HashOf(status), Build.IsTrue(Build.MsMakinaStates), cancellationToken).ConfigureAwait(false);
            var licenses = contents.CopyrightByPackage is { } copyrights ? DebianLicenses.From(contents.DpkgStatus ?? "", copyrights) : known!;
            if (contents.CopyrightByPackage is null)
            {
                Log.LogMessage(MessageImportance.Normal, "SBOM: the packages are those of the last one (the same dpkg status): their licenses from {0}.", licensesPath);
            }
            (document, components) = Compose(contents, licenses, imageId);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            licenses.Save(licensesPath);
            Concurrency.AtomicFile.WriteAllBytes(path, document);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or Docker.DotNet.DockerApiException)
        {
            throw new ImageBuildException(MsiCodes.SbomFailed, MsiMessages.Format("SbomFailed", path, e.Message), path, e);
        }
        Log.LogMessage(MessageImportance.High, "SBOM: wrote {0} ({1} components, CycloneDX 1.6; {2:0.0} s).", path, components, watch.Elapsed.TotalSeconds);
        Sbom = [Item(path, imageId, components)];
    }

    private (byte[] Document, int Components) Compose(ImageContents contents, DebianLicenses licenses, string imageId)
    {
        var build = Build;
        var debian = DpkgStatus.Parse(contents.DpkgStatus ?? "").Select(p => new DebianComponent(p, licenses.Of(p.Name))).ToArray();
        var nuget = AppAssetsFiles
            .Where(f => File.Exists(f.ItemSpec))
            .SelectMany(f => NuGetAssets.Read(File.ReadAllText(f.ItemSpec), f.GetMetadata("RuntimeIdentifier")))
            .ToArray();
        var os = contents.OsRelease;
        var release = os.GetValueOrDefault("VERSION_CODENAME") is { Length: > 0 } codename ? codename : build.MsOsRelease;
        var operatingSystem = new OperatingSystemComponent(os.GetValueOrDefault("ID") ?? build.MsOs, os.GetValueOrDefault("VERSION_ID") ?? release,
            os.GetValueOrDefault("PRETTY_NAME"), Properties(("makinastates:os-release", release), ("makinastates:os-mirror", build.MsOsMirror)));
        var isScratch = string.Equals(build.MsBase, "scratch", StringComparison.Ordinal);
        var image = Properties(
            ("makinastates:platform", build.Platform),
            ("makinastates:base", isScratch ? Path.GetFileName(build.BaseImagePath) : build.MsBase),
            ("makinastates:base-tarball-sha256", isScratch ? build.BaseTarballHash : ""),
            ("makinastates:corpus-commit", build.CorpusCommit),
            ("makinastates:makina-states-commit", contents.MakinaStatesCommit ?? ""));
        var document = CycloneDxDocument.Create(build.ImageCandidate, imageId, debian, nuget, release, build.SourceDateEpoch?.Time,
            imageProperties: image, operatingSystem: operatingSystem);
        using var written = JsonDocument.Parse(document);
        return (document, written.RootElement.GetProperty("components").GetArrayLength());
    }

    /// <summary>Only the values there are: an empty one says nothing.</summary>
    private static IReadOnlyList<KeyValuePair<string, string>> Properties(params (string Name, string Value)[] values) =>
        [.. values.Where(v => !string.IsNullOrWhiteSpace(v.Value)).Select(v => KeyValuePair.Create(v.Name, v.Value.Trim()))];

    /// <summary>The number of components of an existing BOM of this image by this SDK's version, else null.</summary>
    private static int? Describes(string path, string imageId)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var metadata = document.RootElement.GetProperty("metadata");
            var tool = metadata.GetProperty("tools").GetProperty("components")[0].GetProperty("version").GetString();
            return metadata.GetProperty("component").GetProperty("bom-ref").GetString() == imageId && tool == CycloneDxDocument.ToolVersion
                ? document.RootElement.GetProperty("components").GetArrayLength() : null;
        }
        catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    private TaskItem Item(string path, string imageId, int components)
    {
        var item = new TaskItem(path);
        item.SetMetadata("ImageId", imageId);
        item.SetMetadata("Platform", Build.Platform);
        item.SetMetadata("Format", "CycloneDX");
        item.SetMetadata("SpecVersion", "1.6");
        item.SetMetadata("Components", components.ToString(CultureInfo.InvariantCulture));
        return item;
    }
}
