using System.Diagnostics;
using Docker.DotNet;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// Rootless Podman as a user of this machine would run it: an unprivileged user made here (with subordinate ids),
/// `podman system service` running as that user, on cgroup v2 (mounted in its own mount namespace on this hybrid
/// host) in a cgroup delegated to the user, or, to test the refusal, one it does not own. Storage is vfs (/dev/fuse is
/// root-only here). Dispose stops the service and removes the cgroup, the user, its home and its id ranges.
/// </summary>
public sealed class RootlessPodman : IAsyncDisposable
{
    private readonly Process _service;

    private RootlessPodman(string user, string runtimeDirectory, Process service)
    {
        User = user;
        RuntimeDirectory = runtimeDirectory;
        _service = service;
    }

    public string User { get; }

    public string Home => $"/home/{User}";

    public string RuntimeDirectory { get; }

    /// <summary>Where rootless Podman users have their socket; the SDK finds it there by itself.</summary>
    public string Host => $"unix://{RuntimeDirectory}/podman/podman.sock";

    public string Log => File.Exists($"{RuntimeDirectory}.log") ? File.ReadAllText($"{RuntimeDirectory}.log") : "";

    public DockerClient Connect() => new DockerClientBuilder().WithEndpoint(new Uri(Host)).Build();

    /// <summary>What the user's shell would have: no root, its own home, NuGet folder and runtime dir; a TMPDIR in its home, which goes with it.</summary>
    public IReadOnlyList<string> AsUser =>
    [
        "setpriv", $"--reuid={User}", $"--regid={User}", "--init-groups", "env", "-i", $"HOME={Home}", $"USER={User}", $"LOGNAME={User}",
        "PATH=/usr/local/bin:/usr/bin:/bin", $"XDG_RUNTIME_DIR={RuntimeDirectory}", $"NUGET_PACKAGES={Home}/.nuget/packages", $"TMPDIR={Home}/tmp",
        "DOTNET_CLI_TELEMETRY_OPTOUT=1", "DOTNET_NOLOGO=1", "MSBUILDDISABLENODEREUSE=1",
    ];

    public static async Task<RootlessPodman> StartAsync(bool delegatedCgroup)
    {
        foreach (var tool in new[] { "podman", "newuidmap", "setpriv", "unshare", "useradd" })
        {
            if (!new[] { "/usr/bin", "/usr/sbin", "/bin", "/sbin" }.Any(d => File.Exists(Path.Combine(d, tool))))
            {
                TestDocker.MissingPrerequisite($"{tool} is not installed (bash .ci/setup installs what the tests need)");
            }
        }
        if (Mono.Unix.Native.Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("making a user for rootless Podman needs root");
        }
        var user = $"msrl{Guid.NewGuid():N}"[..12];
        HostProcess.Run("useradd", "-m", "-s", "/bin/bash", user);
        if (!File.ReadAllText("/etc/subuid").Contains($"{user}:", StringComparison.Ordinal))
        {
            HostProcess.Run("usermod", "--add-subuids", "400000-465535", "--add-subgids", "400000-465535", user);
        }
        var runtime = $"/tmp/{user}-run";
        HostProcess.Run("install", "-d", "-o", user, "-g", user, "-m", "700", runtime, $"{runtime}/podman");
        HostProcess.Run("install", "-d", "-o", user, "-g", user, "-m", "700", $"/home/{user}/tmp");
        var config = $"/home/{user}/.config/containers";
        Directory.CreateDirectory(config);
        // Both roots spelled out: a commit through the API fails with "runroot must be set" otherwise.
        File.WriteAllText($"{config}/storage.conf",
            $"[storage]\ndriver = \"vfs\"\nrunroot = \"{runtime}/containers\"\ngraphroot = \"/home/{user}/.local/share/containers/storage\"\n");
        // This machine's facts: rlimits above the sandbox's, no systemd to manage cgroups or keep a journal.
        File.WriteAllText($"{config}/containers.conf", "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n");
        HostProcess.Run("chown", "-R", $"{user}:{user}", $"/home/{user}/.config");

        var cgroup = $"/sys/fs/cgroup/{user}";
        var delegation = delegatedCgroup
            ? $"chown {user}:{user} {cgroup} {cgroup}/cgroup.procs {cgroup}/cgroup.subtree_control {cgroup}/cgroup.threads && "
            : "";
        var inNamespace = $"mount --make-rprivate / && umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && mkdir {cgroup} && " +
            delegation + $"echo $$ > {cgroup}/cgroup.procs && exec setpriv --reuid={user} --regid={user} --init-groups env -i HOME=/home/{user} " +
            $"USER={user} PATH=/usr/bin:/bin XDG_RUNTIME_DIR={runtime} podman system service --time=0 unix://{runtime}/podman/podman.sock";
        var service = HostProcess.StartDaemon($"unshare -m sh -c '{inNamespace}'", $"{runtime}.log");
        var podman = new RootlessPodman(user, runtime, service);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var client = podman.Connect();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.System.PingAsync(timeout.Token);
                return podman;
            }
            catch (Exception) when (DateTime.UtcNow < deadline && !service.HasExited)
            {
                await Task.Delay(250);
            }
            catch (Exception e)
            {
                var log = podman.Log;
                await podman.DisposeAsync();
                Assert.Fail($"rootless Podman did not answer on {podman.Host}: {e.Message}\n{log}");
                throw;
            }
        }
    }

    /// <summary>Gives the user a folder the tests made (an image project).</summary>
    public void Own(string path) => HostProcess.Run("chown", "-R", $"{User}:{User}", path);

    public async ValueTask DisposeAsync()
    {
        await HostProcess.StopDaemonAsync(_service);
        // Whatever the user's processes left (conmon, a container's systemd) goes with the user.
        HostProcess.RunIgnoringFailure("pkill", "-KILL", "-u", User);
        await Task.Delay(500);
        // The cgroup v2 hierarchy is the host's (its unified mount on a hybrid machine): remove the user's subtree.
        var unified = Directory.Exists("/sys/fs/cgroup/unified") ? $"/sys/fs/cgroup/unified/{User}" : $"/sys/fs/cgroup/{User}";
        if (Directory.Exists(unified))
        {
            foreach (var dir in Directory.GetDirectories(unified, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length).Append(unified))
            {
                HostProcess.RunIgnoringFailure("rmdir", dir);
            }
        }
        HostProcess.RunIgnoringFailure("userdel", "-r", "-f", User);
        foreach (var ids in new[] { "/etc/subuid", "/etc/subgid" })
        {
            var lines = File.ReadAllLines(ids);
            if (lines.Any(l => l.StartsWith($"{User}:", StringComparison.Ordinal)))
            {
                File.WriteAllLines(ids, lines.Where(l => !l.StartsWith($"{User}:", StringComparison.Ordinal)));
            }
        }
        HostProcess.RunIgnoringFailure("rm", "-rf", RuntimeDirectory, $"{RuntimeDirectory}.log");
    }
}
