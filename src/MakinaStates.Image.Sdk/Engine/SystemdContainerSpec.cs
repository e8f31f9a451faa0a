using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// How a stage container that runs systemd as PID 1 is created: unprivileged, with tmpfs /run and /run/lock,
/// the cgroup mount that fits the engine host's cgroup version, container=docker, and SIGRTMIN+3 to stop it.
/// </summary>
public static class SystemdContainerSpec
{
    public const string StopSignal = "SIGRTMIN+3";

    public static CreateContainerParameters Create(string image, string name, IList<string> command, IDictionary<string, string> labels,
        string? cgroupVersion, IList<string>? environment = null)
    {
        var hostConfig = new HostConfig
        {
            Tmpfs = new Dictionary<string, string>
            {
                ["/run"] = "rw,nosuid,nodev,mode=755",
                ["/run/lock"] = "rw,nosuid,nodev,noexec",
            },
        };
        if (cgroupVersion == "2")
        {
            // cgroup v2: a private cgroup namespace gives systemd its own writable subtree.
            hostConfig.CgroupnsMode = "private";
        }
        else
        {
            // cgroup v1 (the seed's setup): systemd only needs to see the hierarchy, read-only.
            hostConfig.Binds = ["/sys/fs/cgroup:/sys/fs/cgroup:ro"];
        }

        return new CreateContainerParameters
        {
            Image = image,
            Name = name,
            Cmd = command,
            Env = ["container=docker", .. environment ?? []],
            Labels = labels,
            StopSignal = StopSignal,
            HostConfig = hostConfig,
        };
    }
}
