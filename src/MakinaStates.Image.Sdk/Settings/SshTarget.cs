using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// An engine behind SSH: <c>ssh://[user@]host[:port][/path/to/socket]</c>, as DOCKER_HOST, a docker context and
/// Podman's connections write it. With a socket path the SDK forwards that socket; without one it runs
/// `docker system dial-stdio` on the remote, as the docker CLI does. <see cref="Identity"/> is the key a Podman
/// connection names (the user's ssh config decides otherwise).
/// </summary>
public sealed record SshTarget(string? User, string Host, int? Port, string? SocketPath, string? Identity = null)
{
    /// <summary>The target of an ssh:// address; a password in it is refused (ssh never takes one from a URI).</summary>
    public static SshTarget Parse(Uri address, string origin)
    {
        if (address.UserInfo.Contains(':', StringComparison.Ordinal))
        {
            throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("SshPasswordInAddress", Redacted(address), origin));
        }
        var user = address.UserInfo.Length > 0 ? Uri.UnescapeDataString(address.UserInfo) : null;
        var path = address.AbsolutePath is "" or "/" ? null : Uri.UnescapeDataString(address.AbsolutePath);
        return new SshTarget(user, address.IdnHost.Trim('[', ']'), address.IsDefaultPort || address.Port <= 0 ? null : address.Port, path);
    }

    /// <summary>For the log: ssh://user@host:port/path, never a secret (there is none in it).</summary>
    public string Display => $"ssh://{(User is null ? "" : User + "@")}{(Host.Contains(':') ? $"[{Host}]" : Host)}{(Port is { } p ? $":{p}" : "")}{SocketPath}";

    /// <summary>How the engine is reached on the remote.</summary>
    public string Way => SocketPath is null ? "docker system dial-stdio on the remote" : $"its socket {SocketPath} forwarded";

    /// <summary>The options every ssh the SDK starts for this target shares (before the destination).</summary>
    public IReadOnlyList<string> Options() =>
    [
        .. User is null ? Array.Empty<string>() : ["-l", User],
        .. Port is { } port ? ["-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)] : Array.Empty<string>(),
        .. Identity is null ? Array.Empty<string>() : ["-i", Identity, "-o", "IdentitiesOnly=yes"],
    ];

    private static string Redacted(Uri address) => new UriBuilder(address) { Password = "" }.Uri.ToString().Replace(":@", "@", StringComparison.Ordinal);
}
