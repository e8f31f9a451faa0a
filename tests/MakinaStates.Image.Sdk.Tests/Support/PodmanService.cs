using System.Diagnostics;
using Docker.DotNet;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// A rootful Podman serving the Docker API (`podman system service`) for the tests: its own storage root and run
/// root (Docker's images are never touched), in its own mount and network namespaces (its mounts and bridge vanish
/// with it), a unix socket under a temp folder. Stopped and removed on dispose.
/// </summary>
public sealed class PodmanService : IAsyncDisposable
{
    private readonly Process _service;

    private PodmanService(string directory, Process service)
    {
        Directory = directory;
        _service = service;
    }

    public string Directory { get; }

    public string Host => $"unix://{Directory}/podman.sock";

    public string Log => File.Exists(Path.Combine(Directory, "podman.log")) ? File.ReadAllText(Path.Combine(Directory, "podman.log")) : "";

    public DockerClient Connect() => new DockerClientBuilder().WithEndpoint(new Uri(Host)).Build();

    /// <param name="insecureRegistry">host:port of a plain-http registry on this machine (the tests' own): the service
    /// then runs in the host's network namespace to reach it, and registries.conf lets it push there.</param>
    public static async Task<PodmanService> StartAsync(string? insecureRegistry = null)
    {
        foreach (var tool in new[] { "podman", "unshare", "ip" })
        {
            if (!new[] { "/usr/bin", "/usr/sbin", "/bin", "/sbin" }.Any(d => File.Exists(Path.Combine(d, tool))))
            {
                TestDocker.MissingPrerequisite($"{tool} is not installed (bash .ci/setup installs what the tests need)");
            }
        }
        if (Mono.Unix.Native.Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("a rootful Podman service needs root");
        }
        var directory = System.IO.Directory.CreateTempSubdirectory("mspm-").FullName;
        // This machine's facts, not the SDK's: Podman's default rlimits exceed the sandbox's hard limits, no systemd
        // runs here to manage cgroups or keep a journal.
        File.WriteAllText(Path.Combine(directory, "containers.conf"), """
            [containers]
            default_ulimits = []
            [engine]
            cgroup_manager = "cgroupfs"
            events_logger = "file"
            """);
        var registries = "";
        if (insecureRegistry is not null)
        {
            File.WriteAllText(Path.Combine(directory, "registries.conf"), $"[[registry]]\nlocation = \"{insecureRegistry}\"\ninsecure = true\n");
            registries = $"CONTAINERS_REGISTRIES_CONF={directory}/registries.conf ";
        }
        var inNamespaces = "mount --make-rprivate / && " + (insecureRegistry is null ? "ip link set lo up && " : "") +
            $"exec podman --root {directory}/root --runroot {directory}/run --tmpdir {directory}/tmp system service --time=0 unix://{directory}/podman.sock";
        var service = HostProcess.StartDaemon($"env CONTAINERS_CONF={directory}/containers.conf {registries}unshare -m {(insecureRegistry is null ? "-n " : "")}sh -c '{inNamespaces}'",
            $"{directory}/podman.log");
        var podman = new PodmanService(directory, service);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var client = podman.Connect();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                var version = await client.System.GetVersionAsync(timeout.Token);
                Assert.IsTrue(version.Components?.Any(c => c.Name.StartsWith("Podman", StringComparison.Ordinal)) == true, "not a Podman service");
                return podman;
            }
            catch (Exception e) when (e is not AssertFailedException && DateTime.UtcNow < deadline && !service.HasExited)
            {
                await Task.Delay(250);
            }
            catch (Exception e) when (e is not AssertFailedException)
            {
                var log = podman.Log;
                await podman.DisposeAsync();
                Assert.Fail($"the Podman service did not answer on {podman.Host}: {e.Message}\n{log}");
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await HostProcess.StopDaemonAsync(_service);
        HostProcess.RunIgnoringFailure("rm", "-rf", Directory);
    }
}
