using Docker.DotNet;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// What answers on the engine socket, from its own version and info: Docker or Podman (which serves the same API and
/// names itself in the version's components), its version, its host's cgroup version, and whether it runs rootless.
/// </summary>
public sealed record EngineIdentity(string Product, string Version, string ApiVersion, string CgroupVersion, bool Rootless, EngineProcess? Process = null,
    Settings.ImagePlatform? Platform = null)
{
    public bool IsPodman => Product == "Podman";

    public SystemdCgroupAccess SystemdCgroupAccess => SystemdCgroupAccessChoice.Choose(CgroupVersion, ApiVersion, IsPodman);

    /// <summary>For the Stage0 engine line: "Docker 20.10.24, API 1.41", "Podman 4.3.1 (Docker API 1.41), rootless".</summary>
    public string Describe() =>
        (IsPodman ? $"Podman {Version} (Docker API {ApiVersion})" : $"Docker {Version}, API {ApiVersion}")
        + $", cgroup v{(CgroupVersion is { Length: > 0 } v ? v : "?")}" + (Rootless ? ", rootless" : "") + (Platform is { } p ? $", {p}" : "");

    /// <summary>
    /// systemd in a rootless engine's containers needs cgroup v2 and a cgroup delegated to the engine's user. Throws
    /// the coded error saying what the host needs when that is known to be missing; a root engine always passes.
    /// </summary>
    public void ThrowIfRootlessWithoutCgroup()
    {
        if (!Rootless)
        {
            return;
        }
        if (CgroupVersion != "2")
        {
            throw new Diagnostics.ImageBuildException(Diagnostics.MsiCodes.EngineCannotRunSystemd,
                Diagnostics.MsiMessages.Format("RootlessOnCgroupV1", Describe()));
        }
        if (Process?.OwnsItsCgroup() == false)
        {
            throw new Diagnostics.ImageBuildException(Diagnostics.MsiCodes.EngineCannotRunSystemd,
                Diagnostics.MsiMessages.Format("RootlessCgroupNotDelegated", Describe(), Process.CgroupPath(), Process.Uid));
        }
    }

    public static async Task<EngineIdentity> ReadAsync(DockerClient client, EngineProcess? process, CancellationToken cancellationToken)
    {
        var version = await client.System.GetVersionAsync(cancellationToken).ConfigureAwait(false);
        var info = await client.System.GetSystemInfoAsync(cancellationToken).ConfigureAwait(false);
        var podman = version.Components?.FirstOrDefault(c => c.Name?.StartsWith("Podman", StringComparison.OrdinalIgnoreCase) == true);
        // Rootless Docker says so in its security options; rootless Podman only in a field of its own, but a local
        // socket tells who serves it.
        var rootless = info.SecurityOptions?.Any(o => o.Contains("name=rootless", StringComparison.Ordinal)) == true || process?.Rootless == true;
        return new EngineIdentity(podman is null ? "Docker" : "Podman", podman?.Version ?? version.Version ?? "?", version.APIVersion ?? "?",
            info.CgroupVersion ?? "", rootless, process, Settings.ImagePlatform.FromEngine(info.OSType, info.Architecture));
    }
}
