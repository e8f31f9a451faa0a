using System.Globalization;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// MsDockerArgs: the docker-run flags users know, parsed once (shell quoting included) and applied to every
/// stage container. Anything else is refused by name rather than silently ignored.
/// </summary>
public sealed class DockerRunArguments
{
    private static readonly string[][] Flags =
    [
        ["-e", "--env"], ["-v", "--volume"], ["--tmpfs"], ["--cap-add"], ["--cap-drop"], ["--security-opt"], ["--privileged"],
        ["--network", "--net"], ["--add-host"], ["--dns"], ["-m", "--memory"], ["--cpus"], ["-l", "--label"], ["--ulimit"], ["--device"],
    ];

    /// <summary>
    /// The seed's habits that make no sense for a build's containers (-ti, --rm): accepted, so a seed command line
    /// works as it is, and left out, since the SDK runs its stage containers detached and removes them itself.
    /// </summary>
    private static readonly string[] ManagedFlags = ["-t", "-i", "-ti", "-it", "--tty", "--interactive", "--rm"];

    /// <summary>Where the seed mounts the data dir; a -v to it names the data dir (Sdk.Settings.targets), not a mount.</summary>
    public const string SeedDataPath = "/docker/data";

    /// <summary>-e values, for the stage scripts (a -e MS_* that names a setting has set it already: see StageEnvironment).</summary>
    public List<string> Environment { get; } = [];

    /// <summary>The flags the SDK leaves out because it manages its containers itself (see ManagedFlags).</summary>
    public List<string> ManagedBySdk { get; } = [];

    /// <summary>The host folder of -v &lt;host&gt;:/docker/data: evaluation made it the data dir; the SDK mounts it itself.</summary>
    public string? DataDirectory { get; private set; }
    public List<string> Volumes { get; } = [];
    public Dictionary<string, string> Tmpfs { get; } = [];
    public List<string> CapAdd { get; } = [];
    public List<string> CapDrop { get; } = [];
    public List<string> SecurityOptions { get; } = [];
    public bool Privileged { get; private set; }
    public string? Network { get; private set; }
    public List<string> ExtraHosts { get; } = [];
    public List<string> Dns { get; } = [];
    public long? MemoryBytes { get; private set; }
    public long? NanoCpus { get; private set; }
    public Dictionary<string, string> Labels { get; } = [];
    public List<Ulimit> Ulimits { get; } = [];
    public List<DeviceMapping> Devices { get; } = [];

    public static string SupportedFlags => string.Join(", ", Flags.Select(f => string.Join("/", f))) + "; " + string.Join(", ", ManagedFlags) + " (left to the SDK)";

    public static DockerRunArguments Parse(string? text)
    {
        IReadOnlyList<string> words;
        try
        {
            words = ShellWords.Split(text);
        }
        catch (FormatException e)
        {
            throw Invalid($"cannot be split into words ({e.Message})");
        }

        var result = new DockerRunArguments();
        for (var i = 0; i < words.Count; i++)
        {
            var word = words[i];
            string flag = word, value;
            var equals = word.IndexOf('=');
            if (word.StartsWith("--", StringComparison.Ordinal) && equals > 0)
            {
                flag = word[..equals];
            }
            if (ManagedFlags.Contains(flag))
            {
                result.ManagedBySdk.Add(word);
                continue;
            }
            var known = Flags.FirstOrDefault(f => f.Contains(flag))
                ?? throw Invalid($"has the unknown or unsupported flag '{word}'. Supported: {SupportedFlags}");
            if (known[0] == "--privileged")
            {
                result.Privileged = equals < 0 || !string.Equals(word[(equals + 1)..], "false", StringComparison.OrdinalIgnoreCase);
                continue;
            }
            if (flag != word)
            {
                value = word[(equals + 1)..];
            }
            else if (i + 1 < words.Count)
            {
                value = words[++i];
            }
            else
            {
                throw Invalid($"ends with '{word}', which needs a value");
            }
            result.Apply(known[^1], value);
        }
        return result;
    }

    private void Apply(string flag, string value)
    {
        switch (flag)
        {
            case "--env":
                // "-e NAME" passes the build's own value, as docker does.
                Environment.Add(value.Contains('=') ? value : $"{value}={System.Environment.GetEnvironmentVariable(value)}");
                break;
            case "--volume":
                // A stage container with the engine's socket could rewrite any image or container: never given one.
                if (value.Split(':')[0].EndsWith("docker.sock", StringComparison.Ordinal))
                {
                    throw Invalid($"mounts the Docker engine's socket ('{value}'): stage containers never get access to the engine");
                }
                if (BindTarget(value) == SeedDataPath)
                {
                    DataDirectory = value.Split(':')[0];
                    break;
                }
                Volumes.Add(value);
                break;
            case "--tmpfs":
                var colon = value.IndexOf(':');
                Tmpfs[colon < 0 ? value : value[..colon]] = colon < 0 ? "" : value[(colon + 1)..];
                break;
            case "--cap-add": CapAdd.Add(value); break;
            case "--cap-drop": CapDrop.Add(value); break;
            case "--security-opt": SecurityOptions.Add(value); break;
            case "--net": Network = value; break;
            case "--add-host": ExtraHosts.Add(value); break;
            case "--dns": Dns.Add(value); break;
            case "--memory": MemoryBytes = ParseBytes(value); break;
            case "--cpus":
                NanoCpus = decimal.TryParse(value, NumberStyles.Number, CultureInfo.InvariantCulture, out var cpus) && cpus > 0
                    ? (long)(cpus * 1_000_000_000m)
                    : throw Invalid($"has --cpus '{value}': use a positive number such as 1.5");
                break;
            case "--label":
                var eq = value.IndexOf('=');
                Labels[eq < 0 ? value : value[..eq]] = eq < 0 ? "" : value[(eq + 1)..];
                break;
            case "--ulimit": Ulimits.Add(ParseUlimit(value)); break;
            case "--device": Devices.Add(ParseDevice(value)); break;
        }
    }

    /// <summary>
    /// Applies the flags to a stage container; the SDK's own settings (systemd's tmpfs, labels) stay. -e values are
    /// not applied here: they go to the stage scripts' environment (see <see cref="Environment"/>).
    /// </summary>
    public void ApplyTo(CreateContainerParameters container)
    {
        var host = container.HostConfig ??= new HostConfig();
        foreach (var (name, value) in Labels)
        {
            container.Labels ??= new Dictionary<string, string>();
            container.Labels.TryAdd(name, value);
        }
        // A -v for a path the SDK binds itself replaces the SDK's (a cgroup workaround such as
        // -v /sys/fs/cgroup:/sys/fs/cgroup:rw must not become a duplicate mount point).
        var userTargets = Volumes.Select(BindTarget).ToHashSet(StringComparer.Ordinal);
        host.Binds = [.. (host.Binds ?? []).Where(b => !userTargets.Contains(BindTarget(b))), .. Volumes];
        foreach (var (path, options) in Tmpfs)
        {
            host.Tmpfs ??= new Dictionary<string, string>();
            host.Tmpfs[path] = options;
        }
        host.CapAdd = [.. host.CapAdd ?? [], .. CapAdd];
        host.CapDrop = [.. host.CapDrop ?? [], .. CapDrop];
        host.SecurityOpt = [.. host.SecurityOpt ?? [], .. SecurityOptions];
        host.Privileged |= Privileged;
        if (Network is not null) host.NetworkMode = Network;
        host.ExtraHosts = [.. host.ExtraHosts ?? [], .. ExtraHosts];
        host.DNS = [.. host.DNS ?? [], .. Dns];
        if (MemoryBytes is { } memory) host.Memory = memory;
        if (NanoCpus is { } nanoCpus) host.NanoCPUs = nanoCpus;
        host.Ulimits = [.. host.Ulimits ?? [], .. Ulimits];
        host.Devices = [.. host.Devices ?? [], .. Devices];
    }

    private static string BindTarget(string bind) => bind.Split(':') is { Length: >= 2 } parts ? parts[1].TrimEnd('/') : bind;

    internal static long ParseBytes(string value)
    {
        var text = value.Trim().ToLowerInvariant().TrimEnd('b');
        var multiplier = text.Length > 0 ? text[^1] switch { 'k' => 1L << 10, 'm' => 1L << 20, 'g' => 1L << 30, 't' => 1L << 40, _ => 1L } : 1L;
        if (multiplier != 1)
        {
            text = text[..^1];
        }
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number > 0
            ? number * multiplier
            : throw Invalid($"has --memory '{value}': use a size such as 512m or 2g");
    }

    private static Ulimit ParseUlimit(string value)
    {
        // name=soft[:hard]
        var eq = value.IndexOf('=');
        var limits = eq > 0 ? value[(eq + 1)..].Split(':') : [];
        if (eq <= 0 || limits.Length is < 1 or > 2 || !limits.All(l => long.TryParse(l, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)))
        {
            throw Invalid($"has --ulimit '{value}': use name=soft[:hard], e.g. nofile=1024:2048");
        }
        var soft = long.Parse(limits[0], CultureInfo.InvariantCulture);
        return new Ulimit { Name = value[..eq], Soft = soft, Hard = limits.Length == 2 ? long.Parse(limits[1], CultureInfo.InvariantCulture) : soft };
    }

    private static DeviceMapping ParseDevice(string value)
    {
        // host[:container[:permissions]]
        var parts = value.Split(':');
        return new DeviceMapping
        {
            PathOnHost = parts[0],
            PathInContainer = parts.Length > 1 && parts[1].Length > 0 ? parts[1] : parts[0],
            CgroupPermissions = parts.Length > 2 ? parts[2] : "rwm",
        };
    }

    private static ImageBuildException Invalid(string what) =>
        new(MsiCodes.DockerArgsInvalid, MsiMessages.Format("DockerArgsInvalid", what));
}
