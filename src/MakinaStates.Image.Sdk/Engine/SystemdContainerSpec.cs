using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// How a stage container that runs systemd as PID 1 is created: unprivileged, with tmpfs /run and /run/lock,
/// the cgroup access that fits the engine (<see cref="SystemdCgroupAccess"/>), container=docker, and SIGRTMIN+3 to stop it.
/// </summary>
public static class SystemdContainerSpec
{
    public const string StopSignal = "SIGRTMIN+3";

    public static CreateContainerParameters Create(string image, string name, IList<string> command, IDictionary<string, string> labels,
        SystemdCgroupAccess cgroupAccess, IList<string>? environment = null, bool consoleTty = true)
    {
        var hostConfig = new HostConfig
        {
            Tmpfs = new Dictionary<string, string>
            {
                ["/run"] = "rw,nosuid,nodev,mode=755",
                ["/run/lock"] = "rw,nosuid,nodev,noexec",
            },
        };
        switch (cgroupAccess)
        {
            case SystemdCgroupAccess.PrivateWritable:
                hostConfig.CgroupnsMode = "private";
                hostConfig.SecurityOpt = ["writable-cgroups=true"];
                break;
            case SystemdCgroupAccess.HostTreeReadWrite:
                hostConfig.CgroupnsMode = "host";
                hostConfig.Binds = ["/sys/fs/cgroup:/sys/fs/cgroup:rw"];
                break;
            default:
                hostConfig.Binds = ["/sys/fs/cgroup:/sys/fs/cgroup:ro"];
                break;
        }

        return new CreateContainerParameters
        {
            Image = image,
            Name = name,
            Cmd = command,
            Env = ["container=docker", .. environment ?? []],
            // systemd as PID 1 writes to /dev/console only, which a container has only with a tty: without one, a
            // failed boot has no words in the container's log. (The commit sets its own config: Tty is not kept.
            // Not on Podman, whose commit would keep the TERM=xterm it adds for a tty.)
            Tty = consoleTty,
            Labels = labels,
            StopSignal = StopSignal,
            HostConfig = hostConfig,
        };
    }
}
