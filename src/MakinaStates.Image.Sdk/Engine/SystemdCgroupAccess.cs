namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// How systemd as PID 1 of an unprivileged container gets the cgroup it must write (init.scope, its units). Decided
/// from the engine's own answers (cgroup version, API version), so a remote engine gets what its host needs.
/// </summary>
public enum SystemdCgroupAccess
{
    /// <summary>cgroup v1 (the seed's hosts): the host's hierarchy bound read-only; systemd only needs to see it.</summary>
    HostTreeReadOnly,

    /// <summary>
    /// cgroup v2, Docker 28.0 and later: a private cgroup namespace whose cgroup2 mount is writable
    /// (<c>--security-opt writable-cgroups=true</c>): the container sees and changes only its own subtree.
    /// </summary>
    PrivateWritable,

    /// <summary>
    /// cgroup v2 before Docker 28.0, which mounts cgroup2 read-only in every unprivileged container: the host's
    /// /sys/fs/cgroup bound read-write in the host's cgroup namespace. systemd then works in the container's own
    /// cgroup (/docker/&lt;id&gt;); in a private namespace it would take the host's root init.scope instead.
    /// </summary>
    HostTreeReadWrite,
}

public static class SystemdCgroupAccessChoice
{
    /// <summary>The first Docker API version with <c>writable-cgroups</c> (Engine 28.0).</summary>
    public static readonly Version WritableCgroupsApi = new(1, 48);

    public static SystemdCgroupAccess Choose(string? cgroupVersion, string? apiVersion)
    {
        if (cgroupVersion != "2")
        {
            return SystemdCgroupAccess.HostTreeReadOnly;
        }
        return Version.TryParse(apiVersion, out var api) && api >= WritableCgroupsApi
            ? SystemdCgroupAccess.PrivateWritable
            : SystemdCgroupAccess.HostTreeReadWrite;
    }
}
