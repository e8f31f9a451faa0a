using System.Globalization;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Who owns a stage container: this host, this boot, this process (its pid and start time, so a reused pid is not
/// mistaken for the owner). A container whose owner is gone was left by a crash or a kill -9, and can be reaped.
/// </summary>
public static class BuildOwnership
{
    public static string Host { get; } = Environment.MachineName;

    public static string BootId { get; } = ReadTrimmed("/proc/sys/kernel/random/boot_id") ?? "";

    public static string ProcessIdentity { get; } = Identity(Environment.ProcessId) ?? Environment.ProcessId.ToString(CultureInfo.InvariantCulture);

    public static void AddLabels(IDictionary<string, string> labels)
    {
        labels[BuildLabels.OwnerPid] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        labels[BuildLabels.OwnerHost] = Host;
        labels[BuildLabels.OwnerProcess] = $"{BootId}/{ProcessIdentity}";
    }

    /// <summary>True when the container's owner is known to be gone; containers of other hosts are never judged.</summary>
    public static bool IsOrphan(IDictionary<string, string>? labels)
    {
        if (labels is null || !labels.TryGetValue(BuildLabels.OwnerHost, out var host) || host != Host
            || !labels.TryGetValue(BuildLabels.OwnerProcess, out var owner) || !labels.TryGetValue(BuildLabels.OwnerPid, out var pidText)
            || !int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
        {
            return false;
        }
        var slash = owner.IndexOf('/');
        if (slash < 0 || owner[..slash] != BootId)
        {
            return slash >= 0; // another boot of this host: the owner cannot be running
        }
        return Identity(pid) != owner[(slash + 1)..];
    }

    /// <summary>Removes the stage containers and data volumes of this host whose build process is gone.</summary>
    public static async Task<IReadOnlyList<string>> ReapOrphansAsync(DockerEngine engine, CancellationToken cancellationToken)
    {
        var containers = await engine.Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{BuildLabels.OwnerHost}={Host}"] = true },
            },
        }, cancellationToken).ConfigureAwait(false);
        var reaped = new List<string>();
        foreach (var container in containers.Where(c => IsOrphan(c.Labels)))
        {
            await engine.RemoveContainerAsync(container.ID, cancellationToken).ConfigureAwait(false);
            reaped.Add($"{container.Names.FirstOrDefault()?.TrimStart('/') ?? container.ID[..12]} (build {(container.Labels.TryGetValue(BuildLabels.BuildId, out var build) ? build : "?")})");
        }
        // The data volumes of remote-engine builds, once their containers are gone.
        var volumes = await engine.Client.Volumes.ListAsync(new VolumesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{BuildLabels.OwnerHost}={Host}"] = true },
            },
        }, cancellationToken).ConfigureAwait(false);
        foreach (var volume in (volumes.Volumes ?? []).Where(v => IsOrphan(v.Labels)))
        {
            // Another build's Stage0 may be reaping the same volume: gone or busy is not this build's failure.
            if (await DataVolume.TryRemoveAsync(engine, volume.Name, cancellationToken).ConfigureAwait(false))
            {
                reaped.Add($"volume {volume.Name}");
            }
        }
        return reaped;
    }

    /// <summary>"pid:starttime" from /proc, or null when no such process runs.</summary>
    private static string? Identity(int pid)
    {
        var stat = ReadTrimmed($"/proc/{pid}/stat");
        if (stat is null)
        {
            return null;
        }
        // The command name (field 2) may hold spaces: count fields after its closing parenthesis. starttime is field 22.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return fields.Length > 19 ? $"{pid}:{fields[19]}" : null;
    }

    private static string? ReadTrimmed(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
