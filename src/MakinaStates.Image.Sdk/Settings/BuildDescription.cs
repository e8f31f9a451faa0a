using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// One build, described once: every setting as the project resolved it (MsResolveSettings writes it from the
/// properties and items), then what Stage0 resolved (build id, names, mirror, init, keys). The later stages read it
/// instead of taking each setting as a parameter; the engine connection, the stage environment, the docker-run
/// arguments and every parsed value (image reference, ports, volumes, secrets) are derived from it in one place each.
/// Written to obj/msimage/build.json. A new setting is a property here and its default (with its line in
/// MsResolveSettings) in Sdk.Settings.targets; it is part of the inputs key unless marked <see cref="NotInInputsKeyAttribute"/>.
/// </summary>
public sealed class BuildDescription
{
    // Settings (MSBuild properties; the names are the properties').
    public string MsImage { get; set; } = "";
    public string MsBase { get; set; } = "";
    [NotInInputsKey("a folder of this machine: what it holds is keyed by content (the tree, the scripts)")]
    public string MsImageDir { get; set; } = "";
    [NotInInputsKey("a folder of this machine: the base tarball in it is keyed by content")]
    public string MsDataDir { get; set; } = "";
    public string MsCommand { get; set; } = "";
    public string MsOs { get; set; } = "";
    public string MsOsRelease { get; set; } = "";
    public string MsOsMirror { get; set; } = "";
    public string MsBaseImage { get; set; } = "";
    public string MsGitUrl { get; set; } = "";
    public string MsGitBranch { get; set; } = "";
    [NotInInputsKey("a folder of this machine: the scripts found there are keyed by content")]
    public string MsStagePath { get; set; } = "";
    [NotInInputsKey("shapes only the base tarball, keyed by content")]
    public string MsStage0Tag { get; set; } = "";
    [NotInInputsKey("shapes only the base tarball, keyed by content")]
    public string MsDockerfileStage0 { get; set; } = "";
    public string MsDockerArgs { get; set; } = "";
    public string MsMakinaStatesBuildForce { get; set; } = "";
    public string MsMakinaStates { get; set; } = "";
    public string MsInit { get; set; } = "";
    public string MsExistingFolderMetadata { get; set; } = "";
    public string MsDoSnapshot { get; set; } = "";
    [NotInInputsKey("shapes only the base tarball, keyed by content")]
    public string MsSkipStage0Build { get; set; } = "";
    [NotInInputsKey("how long the build waits, not what it makes")]
    public string MsBootTimeout { get; set; } = "";
    [NotInInputsKey("shapes only the base tarball, keyed by content")]
    public string MsBaseBuilder { get; set; } = "";
    [NotInInputsKey("shapes only the base tarball, keyed by content")]
    public string MsRebuildBase { get; set; } = "";
    public string MsExposeInjectedVolumes { get; set; } = "";
    [NotInInputsKey("rebuilds whatever the key says")]
    public string MsForceRebuild { get; set; } = "";
    [NotInInputsKey("where the candidate goes, not what it is")]
    public string MsPush { get; set; } = "";
    [NotInInputsKey("where the candidate goes, not what it is")]
    public string MsRegistry { get; set; } = "";
    [NotInInputsKey("where the candidate goes, not what it is")]
    public string MsRegistryUsername { get; set; } = "";
    [NotInInputsKey("which engine: the candidate is looked for on it")]
    public string MsDockerHost { get; set; } = "";
    [NotInInputsKey("which engine: the candidate is looked for on it")]
    public string MsDockerCertPath { get; set; } = "";
    [NotInInputsKey("which engine: the candidate is looked for on it")]
    public string MsDockerTlsVerify { get; set; } = "";
    [NotInInputsKey("which engine: the candidate is looked for on it")]
    public string MsDockerRemote { get; set; } = "";
    [NotInInputsKey("how the engine is reached, not what it builds")]
    public string MsSshCommand { get; set; } = "";
    /// <summary>One platform (linux/arm64); empty is the engine's own. A multi-platform build runs one build per platform.</summary>
    [NotInInputsKey("the platform Stage0 resolves is keyed (platform=)")]
    public string MsPlatform { get; set; } = "";
    /// <summary>Several platforms (linux/amd64;linux/arm64): one build each, then one image index when pushed.</summary>
    [NotInInputsKey("the platform Stage0 resolves is keyed (platform=)")]
    public string MsPlatforms { get; set; } = "";
    /// <summary>true in each per-platform build of an MsPlatforms build: a platform not the engine's own gets :candidate-&lt;arch&gt;.</summary>
    [NotInInputsKey("names the candidate's tag, not its content")]
    public string MsPlatformOfMany { get; set; } = "";
    /// <summary>true: Stage3 stamps org.opencontainers.image.created at the commit (MsGenerateLabels and MsGenerateLabelCreated).</summary>
    public string MsGenerateLabelCreated { get; set; } = "";
    /// <summary>Unix seconds, git, now, or empty (SOURCE_DATE_EPOCH, else the base's time): see <see cref="Settings.SourceDateEpoch"/>.</summary>
    public string MsSourceDateEpoch { get; set; } = "";
    /// <summary>true: each committed layer (stage1's, the candidate's) is written again with its ACLs and xattrs, times clamped to the epoch.</summary>
    public string MsRewriteLayers { get; set; } = "";
    [NotInInputsKey("where a copy of the candidate is written, not what it is")]
    public string MsArchiveOutputPath { get; set; } = "";
    [NotInInputsKey("the form of the candidate's copy, not the candidate")]
    public string MsArchiveFormat { get; set; } = "";
    [NotInInputsKey("a file written beside the candidate, not the candidate")]
    public string MsSbom { get; set; } = "";

    // Items, with their metadata.
    public List<Item> InjectedVolumes { get; set; } = [];
    public List<Item> Secrets { get; set; } = [];
    public List<Item> Ports { get; set; } = [];
    public List<Item> Volumes { get; set; } = [];
    public List<Item> EnvironmentVariables { get; set; } = [];
    /// <summary>The generated org.opencontainers.image.* labels, then the MsLabel items (Value): later ones win.</summary>
    public List<Item> Labels { get; set; } = [];

    // Resolved by Stage0 for this build.
    public string BuildId { get; set; } = "";
    public string ImageCandidate { get; set; } = "";
    public string Stage1Name { get; set; } = "";
    public string Stage2Name { get; set; } = "";
    public string Stage1Image { get; set; } = "";
    public string BaseImagePath { get; set; } = "";
    /// <summary>The base tarball's SHA-256 (hex) as Stage0 found it; empty when there was none yet.</summary>
    public string BaseTarballHash { get; set; } = "";
    public string BootstrapScriptsDirectory { get; set; } = "";
    /// <summary>The placed files stage1.sh may use (<see cref="Scripts.StageScriptResolver.UsedByStage1"/>): its build key's scripts.</summary>
    public List<string> Stage1Scripts { get; set; } = [];
    public string CorpusCommit { get; set; } = "";
    /// <summary>What the inputs key is the hash of (<see cref="Settings.InputsKey"/> reads it back).</summary>
    public string InputsKeyText { get; set; } = "";
    /// <summary>This build's obj/msimage/ folder (a platform's own with several).</summary>
    public string IntermediateDirectory { get; set; } = "";
    /// <summary>The platform built (MsPlatform, or the engine's own), and whether the engine runs it under emulation.</summary>
    public string Platform { get; set; } = "";
    public bool PlatformEmulated { get; set; }
    /// <summary>MsSourceDateEpoch as Stage0 resolved it (null seconds: no clamping, or the base this build makes decides).</summary>
    public SourceDateEpoch? SourceDateEpoch { get; set; }
    /// <summary>Where this platform's bill of materials is written (obj/msimage/&lt;arch&gt;/sbom.cdx.json); empty with MsSbom=false.</summary>
    public string SbomPath { get; set; } = "";

    /// <summary>The platforms asked for: MsPlatforms' entries, else MsPlatform; none is the engine's own.</summary>
    public IReadOnlyList<ImagePlatform> RequestedPlatforms()
    {
        var listed = MsPlatforms.Split([';', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return listed.Length > 0 ? [.. listed.Select(p => ImagePlatform.Parse(p, "MsPlatforms"))]
            : string.IsNullOrWhiteSpace(MsPlatform) ? [] : [ImagePlatform.Parse(MsPlatform, "MsPlatform")];
    }

    /// <summary>The base tarball's default name (Sdk.targets' default): the OS and release, then the platform when it is not the engine's own.</summary>
    public string DefaultBaseImageName(string? platformSuffix = null) =>
        $"baseimage-{MsOs}-{MsOsRelease}{(platformSuffix is null ? "" : "-" + platformSuffix)}.tar.xz";

    /// <summary>MsBaseImage was left to its default (then each platform has its own tarball).</summary>
    [JsonIgnore]
    public bool HasDefaultBaseImage => MsBaseImage == DefaultBaseImageName();

    /// <summary>The platform this build makes; Stage0 resolved it.</summary>
    [JsonIgnore]
    public ImagePlatform ResolvedPlatform => ImagePlatform.Parse(Platform, "MsPlatform");

    /// <summary>An MSBuild item as data: its spec and metadata.</summary>
    public sealed record Item(string Spec, Dictionary<string, string> Metadata)
    {
        public static Item From(ITaskItem item, params string[] metadataNames) =>
            new(item.ItemSpec, metadataNames.Where(n => item.GetMetadata(n).Length > 0).ToDictionary(n => n, item.GetMetadata));

        public ITaskItem ToTaskItem()
        {
            var item = new TaskItem(Spec);
            foreach (var (name, value) in Metadata)
            {
                item.SetMetadata(name, value);
            }
            return item;
        }
    }

    public static ITaskItem[] TaskItems(IEnumerable<Item> items) => [.. items.Select(i => i.ToTaskItem())];

    // Parsed values: each parsed here, once per description; Stage0 reads each once, so a bad value fails before
    // anything is made, and the later stages take the parsed value.

    /// <summary>MsDockerArgs, parsed.</summary>
    [JsonIgnore]
    public DockerRunArguments DockerRunArguments => _dockerRunArguments ??= DockerRunArguments.Parse(MsDockerArgs);
    private DockerRunArguments? _dockerRunArguments;

    /// <summary>MsImage, parsed.</summary>
    [JsonIgnore]
    public ImageReference Image => _image ??= ImageReference.Parse(MsImage, "MsImage");
    private ImageReference? _image;

    /// <summary>MsPort items as the image config's ExposedPorts.</summary>
    [JsonIgnore]
    public IDictionary<string, Docker.DotNet.Models.EmptyStruct> ExposedPorts => _ports ??= ImageConfiguration.ExposedPorts(TaskItems(Ports));
    private IDictionary<string, Docker.DotNet.Models.EmptyStruct>? _ports;

    /// <summary>MsVolume items as the image config's Volumes.</summary>
    [JsonIgnore]
    public IDictionary<string, Docker.DotNet.Models.EmptyStruct> ImageVolumes => _volumes ??= ImageConfiguration.Volumes(TaskItems(Volumes));
    private IDictionary<string, Docker.DotNet.Models.EmptyStruct>? _volumes;

    /// <summary>MsSecret items: names and where their values are read from.</summary>
    [JsonIgnore]
    public IReadOnlyList<BuildSecrets.Secret> BuildSecrets => _secrets ??= Settings.BuildSecrets.Resolve(TaskItems(Secrets));
    private IReadOnlyList<BuildSecrets.Secret>? _secrets;

    /// <summary>MsBootTimeout: how long systemd may take to boot (180 s when unset or not a positive number of seconds).</summary>
    [JsonIgnore]
    public TimeSpan BootTimeout => TimeSpan.FromSeconds(int.TryParse(MsBootTimeout, out var seconds) && seconds > 0 ? seconds : 180);

    /// <summary>MsExposeInjectedVolumes: the tree is also at /docker/injected_volumes during the build (the seed's layout).</summary>
    [JsonIgnore]
    public bool ExposesInjectedVolumes => !string.Equals(MsExposeInjectedVolumes.Trim(), "false", StringComparison.OrdinalIgnoreCase);

    /// <summary>MsMakinaStates, as Stage0 resolved it: stage2.sh runs the makina-states step.</summary>
    [JsonIgnore]
    public bool RunsMakinaStates => IsTrue(MsMakinaStates);

    /// <summary>MsRewriteLayers: the committed layers are written again (ACLs and xattrs in, times clamped).</summary>
    [JsonIgnore]
    public bool RewritesLayers => IsTrue(MsRewriteLayers);

    /// <summary>MsArchiveOutputPath and MsArchiveFormat: the archive written after the build, or null (none).</summary>
    [JsonIgnore]
    public ArchiveOutput? Archive => _archive ??= Settings.ArchiveOutput.Resolve(MsArchiveOutputPath, MsArchiveFormat, Image,
        IsTrue(MsPlatformOfMany) || RequestedPlatforms().Count > 1);
    private ArchiveOutput? _archive;

    /// <summary>MsSbom: a CycloneDX bill of materials is written beside the candidate (anything but false).</summary>
    [JsonIgnore]
    public bool WritesSbom => !string.Equals(MsSbom.Trim(), "false", StringComparison.OrdinalIgnoreCase);

    /// <summary>MsRebuildBase: the base tarball is made again.</summary>
    [JsonIgnore]
    public bool RebuildsBase => IsTrue(MsRebuildBase);

    /// <summary>MsEnvironmentVariable items as the image config's Env entries.</summary>
    [JsonIgnore]
    public IList<string> ImageEnvironment => ImageConfiguration.Environment(TaskItems(EnvironmentVariables));

    /// <summary>MsExistingFolderMetadata: acl or all.</summary>
    [JsonIgnore]
    public string ExistingFolderMetadataMode => _folderMode ??= Injection.ExistingFolderMetadata.Parse(MsExistingFolderMetadata);
    private string? _folderMode;

    /// <summary>
    /// The settings that shape the image, by name: every Ms* setting but those marked <see cref="NotInInputsKeyAttribute"/>.
    /// A new setting is in the key unless it says why not, so forgetting it can never make a stale image look current.
    /// </summary>
    public IEnumerable<(string Name, string Value)> KeyedSettings() =>
        KeyedSettingProperties.Select(p => (p.Name, (string)p.GetValue(this)!));

    private static readonly System.Reflection.PropertyInfo[] KeyedSettingProperties = [.. typeof(BuildDescription).GetProperties()
        .Where(p => p.PropertyType == typeof(string) && p.Name.StartsWith("Ms", StringComparison.Ordinal)
            && p.GetCustomAttributes(typeof(NotInInputsKeyAttribute), false).Length == 0)
        .OrderBy(p => p.Name, StringComparer.Ordinal)];

    /// <summary>The engine of this build: MsDockerHost/MsDockerCertPath/MsDockerTlsVerify over the docker environment.</summary>
    public DockerEndpoint ResolveEndpoint() =>
        DockerEndpoint.Resolve(MsDockerHost, MsDockerCertPath, MsDockerTlsVerify, Environment.GetEnvironmentVariable,
            Environment.GetFolderPath(Environment.SpecialFolder.UserProfile)).WithSshCommand(ShellWords.Split(MsSshCommand));

    /// <summary>MsDockerRemote: null for auto (a unix socket is local), true to upload everything, false.</summary>
    public bool? Remote => MsDockerRemote.Trim().ToLowerInvariant() switch
    {
        "" or "auto" => null,
        "true" => true,
        "false" => false,
        _ => throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("DockerRemoteInvalid", MsDockerRemote)),
    };

    public bool IsTrue(string value) => string.Equals(value.Trim(), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Every setting as the seed names it (MS_*), in the seed's order: the one list of them outside Sdk.targets' defaults.</summary>
    public IReadOnlyList<(string Name, string Value)> SeedSettings() =>
    [
        ("MS_IMAGE", MsImage), ("MS_BASE", MsBase), ("MS_IMAGE_DIR", MsImageDir), ("MS_DATA_DIR", MsDataDir), ("MS_COMMAND", MsCommand),
        ("MS_INIT", MsInit), ("MS_MAKINASTATES", MsMakinaStates), ("MS_MAKINASTATES_BUILD_FORCE", MsMakinaStatesBuildForce),
        ("MS_EXISTING_FOLDER_METADATA", MsExistingFolderMetadata), ("MS_OS", MsOs), ("MS_OS_RELEASE", MsOsRelease), ("MS_OS_MIRROR", MsOsMirror),
        ("MS_PLATFORM", Platform), ("MS_OS_ARCH", Platform.Length > 0 ? ResolvedPlatform.DebianArchitecture : ""),
        ("MS_BASEIMAGE", MsBaseImage), ("MS_GIT_URL", MsGitUrl), ("MS_GIT_BRANCH", MsGitBranch), ("MS_DO_SNAPSHOT", MsDoSnapshot),
        ("MS_STAGE1_NAME", Stage1Name), ("MS_STAGE2_NAME", Stage2Name), ("MS_IMAGE_CANDIDATE", ImageCandidate), ("MS_STAGE0_TAG", MsStage0Tag),
        ("MS_DOCKER_ARGS", MsDockerArgs), ("MS_SKIP_STAGE0_BUILD", MsSkipStage0Build), ("MS_STAGE_PATH", MsStagePath),
    ];

    /// <summary>
    /// The environment of the stage scripts: every MS_* setting as the seed passes them, then MsDockerArgs' -e values.
    /// Given to the scripts (exec), never as the container's Env, which docker commit would bake into the image.
    /// SOURCE_DATE_EPOCH too, when the build has one: tools that honour it (useradd's last-change day, compilers) write
    /// the same files again. A -e MS_* that names a setting has set it at evaluation (Sdk.Settings.targets), where a
    /// project property may still have won: the scripts see the setting as resolved, once, not the -e word as well.
    /// </summary>
    public IList<string> StageEnvironment()
    {
        var seed = SeedSettings();
        var names = seed.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        return
        [
            .. seed.Select(s => $"{s.Name}={s.Value}"),
            .. SourceDateEpoch?.Seconds is { } epoch ? [$"SOURCE_DATE_EPOCH={epoch.ToString(CultureInfo.InvariantCulture)}"] : Array.Empty<string>(),
            .. DockerRunArguments.Environment.Where(e => !names.Contains(e.Split('=')[0])),
        ];
    }

    /// <summary>Sets a setting by its property name; an unknown name is the SDK's own mistake.</summary>
    public void Set(string property, string value)
    {
        var setting = typeof(BuildDescription).GetProperty(property);
        if (setting is null || setting.PropertyType != typeof(string) || !property.StartsWith("Ms", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"MsResolveSettings passes '{property}', which the build description does not have.");
        }
        setting.SetValue(this, value);
    }

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Concurrency.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, BuildDescriptionJson.Default.BuildDescription));
    }

    /// <summary>The description Stage0 wrote; a task given none (the multi-platform index push) has an empty one.</summary>
    public static BuildDescription Load(string path) => path.Length == 0 ? new BuildDescription() :
        JsonSerializer.Deserialize(File.ReadAllText(path), BuildDescriptionJson.Default.BuildDescription)
        ?? throw new InvalidDataException($"{path} holds no build description.");
}

/// <summary>
/// The description's JSON, generated at compile time: every task of every build reads it, and the reflection-based
/// serializer's first use cost Stage0 alone 40 ms of a no-op build.
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(BuildDescription))]
internal sealed partial class BuildDescriptionJson : JsonSerializerContext;

/// <summary>A setting that does not shape the image: left out of the inputs key, for the reason given.</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class NotInInputsKeyAttribute(string why) : Attribute
{
    public string Why { get; } = why;
}
