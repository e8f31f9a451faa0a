using System.Diagnostics;
using Docker.DotNet;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// A second Docker engine that sees cgroup v2, as on Debian 12, Ubuntu 22.04+ and hosted CI runners, on this cgroup v1
/// (hybrid) machine: dockerd in its own mount namespace with cgroup2 mounted at /sys/fs/cgroup, and in its own network
/// namespace (its own docker0; the host's is never touched). Its own data root, exec root and containerd namespace;
/// a unix socket under a temp folder. The host's files stay visible to it, so the build's data dir is bind-mounted as
/// with a local engine. Stopped and removed on dispose. One per test run: it costs a base import.
/// </summary>
public sealed class CgroupV2DockerEngine : IAsyncDisposable
{
    private readonly Process _daemon;

    private CgroupV2DockerEngine(string directory, Process daemon)
    {
        Directory = directory;
        _daemon = daemon;
    }

    public string Directory { get; }

    public string Host => $"unix://{Directory}/docker.sock";

    public string Log => File.Exists(Path.Combine(Directory, "dockerd.log")) ? File.ReadAllText(Path.Combine(Directory, "dockerd.log")) : "";

    public DockerClient Connect() => new DockerClientBuilder().WithEndpoint(new Uri(Host)).Build();

    public static async Task<CgroupV2DockerEngine> StartAsync()
    {
        foreach (var tool in new[] { "dockerd", "unshare", "ip" })
        {
            if (!new[] { "/usr/bin", "/usr/sbin", "/bin", "/sbin" }.Any(d => File.Exists(Path.Combine(d, tool))))
            {
                TestDocker.MissingPrerequisite($"{tool} is not installed (bash .ci/setup installs what the tests need)");
            }
        }
        if (Mono.Unix.Native.Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("starting a cgroup v2 dockerd in its own namespaces needs root");
        }
        // Short: containerd's sockets live under the exec root and a unix socket path is limited to 108 bytes.
        var directory = System.IO.Directory.CreateTempSubdirectory("msv2-").FullName;
        var suffix = Path.GetFileName(directory)[5..];
        // The cgroup v1 mounts are dropped only inside the new mount namespace (private first, so nothing propagates
        // back to the host).
        var inNamespaces = "mount --make-rprivate / && umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && ip link set lo up && " +
            $"exec dockerd --data-root {directory}/data --exec-root {directory}/exec -H unix://{directory}/docker.sock --pidfile {directory}/dockerd.pid " +
            $"--containerd-namespace msv2-{suffix} --containerd-plugins-namespace msv2-{suffix}-plugins";
        var daemon = HostProcess.StartDaemon($"unshare -m -n sh -c '{inNamespaces}'", $"{directory}/dockerd.log");
        var engine = new CgroupV2DockerEngine(directory, daemon);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var client = engine.Connect();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                var info = await client.System.GetSystemInfoAsync(timeout.Token);
                Assert.AreEqual("2", info.CgroupVersion, "the engine in the cgroup2 mount namespace does not report cgroup v2");
                return engine;
            }
            catch (Exception e) when (e is not AssertFailedException && DateTime.UtcNow < deadline && !daemon.HasExited)
            {
                await Task.Delay(250);
            }
            catch (Exception e) when (e is not AssertFailedException)
            {
                var log = engine.Log;
                await engine.DisposeAsync();
                Assert.Fail($"the cgroup v2 dockerd did not answer on {engine.Host}: {e.Message}\n{log}");
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await HostProcess.StopDaemonAsync(_daemon);
        // Its mounts lived in its own namespace, gone with it: the folder can go.
        HostProcess.RunIgnoringFailure("rm", "-rf", Directory);
    }
}
