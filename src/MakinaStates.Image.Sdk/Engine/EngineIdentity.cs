using Docker.DotNet;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// What answers on the engine socket, from its own version and info: Docker or Podman (which serves the same API and
/// names itself in the version's components), its version, its host's cgroup version, and whether it runs rootless.
/// </summary>
public sealed record EngineIdentity(string Product, string Version, string ApiVersion, string CgroupVersion, bool Rootless)
{
    public bool IsPodman => Product == "Podman";

    public SystemdCgroupAccess SystemdCgroupAccess =>
        // Podman answers API 1.41 whatever its version; it has no writable-cgroups option, and the host-tree bind is
        // what runs systemd there too (rootful). Rootless Podman is checked before any stage (Stage0).
        SystemdCgroupAccessChoice.Choose(CgroupVersion, IsPodman ? "1.41" : ApiVersion);

    /// <summary>For the Stage0 engine line: "Docker 20.10.24, API 1.41", "Podman 4.3.1 (Docker API 1.41), rootless".</summary>
    public string Describe() =>
        (IsPodman ? $"Podman {Version} (Docker API {ApiVersion})" : $"Docker {Version}, API {ApiVersion}")
        + $", cgroup v{(CgroupVersion is { Length: > 0 } v ? v : "?")}" + (Rootless ? ", rootless" : "");

    public static async Task<EngineIdentity> ReadAsync(DockerClient client, CancellationToken cancellationToken)
    {
        var version = await client.System.GetVersionAsync(cancellationToken).ConfigureAwait(false);
        var info = await client.System.GetSystemInfoAsync(cancellationToken).ConfigureAwait(false);
        var podman = version.Components?.FirstOrDefault(c => c.Name?.StartsWith("Podman", StringComparison.OrdinalIgnoreCase) == true);
        var rootless = info.SecurityOptions?.Any(o => o.Contains("name=rootless", StringComparison.Ordinal)) == true;
        return new EngineIdentity(podman is null ? "Docker" : "Podman", podman?.Version ?? version.Version ?? "?", version.APIVersion ?? "?",
            info.CgroupVersion ?? "", rootless);
    }
}
