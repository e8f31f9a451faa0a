using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>TLS to a tcp engine: the folder with ca.pem, cert.pem and key.pem, and whether the engine's certificate is checked.</summary>
public sealed record DockerTls(string CertificateDirectory, bool VerifyServer);

/// <summary>
/// Which engine a build talks to and how, resolved the way the docker CLI does it so a shell that works with `docker`
/// works with the build: MsDockerHost, then DOCKER_HOST, then DOCKER_CONTEXT or the config's current context, then
/// Podman's CONTAINER_HOST, then the local socket, with Podman's sockets as fallbacks when no Docker engine answers
/// there. MsDockerCertPath and MsDockerTlsVerify win over DOCKER_CERT_PATH and DOCKER_TLS_VERIFY.
/// </summary>
public sealed record DockerEndpoint(Uri Address, string Origin, DockerTls? Tls)
{
    public const string DefaultAddress = "unix:///var/run/docker.sock";

    /// <summary>Rootful Podman's API socket (podman.socket).</summary>
    public const string PodmanAddress = "unix:///run/podman/podman.sock";

    /// <summary>Tried in order when nothing answers at <see cref="Address"/>: only for the default endpoint, never after an explicit choice.</summary>
    public IReadOnlyList<DockerEndpoint> Fallbacks { get; init; } = [];

    /// <summary>An ssh:// endpoint's target (null for any other); <see cref="SshCommand"/> starts the tunnel to it.</summary>
    public SshTarget? Ssh { get; init; }

    /// <summary>The ssh program and its options (MsSshCommand); ssh from PATH unless set.</summary>
    public IReadOnlyList<string> SshCommand { get; init; } = ["ssh"];

    /// <summary>For the log: the address, how it is secured and where the setting came from. Never a secret.</summary>
    public string Describe() => Tls switch
    {
        null when Ssh is { } ssh => $"{ssh.Display} over SSH, {ssh.Way} (from {Origin})",
        null => $"{Display} (from {Origin})",
        { VerifyServer: true } => $"{Display} over TLS, engine verified against {Path.Combine(Tls.CertificateDirectory, "ca.pem")} (from {Origin})",
        _ => $"{Display} over TLS, engine certificate not verified (from {Origin})",
    };

    /// <summary>The address as the user wrote it (Uri adds a trailing '/' to tcp://host:port).</summary>
    public string Display => Ssh is { } ssh ? ssh.Display : Address.Scheme == "unix" ? Address.ToString() : Address.GetLeftPart(UriPartial.Authority);

    /// <param name="msDockerTlsVerify">true/false; empty leaves it to DOCKER_TLS_VERIFY (any value turns it on, as in docker).</param>
    /// <param name="environment">Reads an environment variable (tests give their own).</param>
    public static DockerEndpoint Resolve(string? msDockerHost, string? msDockerCertPath, string? msDockerTlsVerify,
        Func<string, string?> environment, string homeDirectory)
    {
        var configDirectory = ConfigDirectory(environment, homeDirectory);
        var explicitVerify = ParseVerify(msDockerTlsVerify);
        var certPath = NonEmpty(msDockerCertPath) ?? NonEmpty(environment("DOCKER_CERT_PATH"));
        var verify = explicitVerify ?? NonEmpty(environment("DOCKER_TLS_VERIFY")) is not null;
        // As docker's --tlsverify: set at all (even to false), it turns TLS on; DOCKER_TLS (docker's --tls) does too.
        var tlsWithoutVerify = NonEmpty(environment("DOCKER_TLS")) is not null || explicitVerify == false;

        if (NonEmpty(msDockerHost) is { } host)
        {
            return FromHost(host, "MsDockerHost", certPath ?? configDirectory, verify, tlsWithoutVerify);
        }
        if (NonEmpty(environment("DOCKER_HOST")) is { } environmentHost)
        {
            return FromHost(environmentHost, "DOCKER_HOST", certPath ?? configDirectory, verify, tlsWithoutVerify);
        }
        var (contextName, contextOrigin) = NonEmpty(environment("DOCKER_CONTEXT")) is { } fromEnvironment
            ? (fromEnvironment, "DOCKER_CONTEXT")
            : (CurrentContext(configDirectory), Path.Combine(configDirectory, "config.json"));
        if (contextName is not null && contextName != "default")
        {
            // A named context carries its own TLS files: docker ignores DOCKER_CERT_PATH there (the property still wins).
            return FromContext(contextName, contextOrigin, configDirectory, NonEmpty(msDockerCertPath), explicitVerify);
        }
        if (NonEmpty(environment("CONTAINER_HOST")) is { } podmanHost)
        {
            return FromHost(podmanHost, "CONTAINER_HOST", certPath ?? configDirectory, verify, tlsWithoutVerify);
        }
        if (NonEmpty(environment("CONTAINER_CONNECTION")) is { } connectionName)
        {
            var named = PodmanConnections.Find(connectionName, environment, homeDirectory)
                ?? throw new ImageBuildException(MsiCodes.DockerContextInvalid, MsiMessages.Format("PodmanConnectionMissing", connectionName));
            return FromConnection(named, "CONTAINER_CONNECTION");
        }
        // Podman users often have no Docker engine: its user socket (rootless), then its system socket.
        List<DockerEndpoint> podman = [];
        if (NonEmpty(environment("XDG_RUNTIME_DIR")) is { } runtimeDirectory)
        {
            podman.Add(new DockerEndpoint(ParseAddress($"unix://{runtimeDirectory.TrimEnd('/')}/podman/podman.sock", "XDG_RUNTIME_DIR"),
                "the rootless Podman socket in XDG_RUNTIME_DIR", null));
        }
        podman.Add(new DockerEndpoint(ParseAddress(PodmanAddress, "the default"), "the Podman socket", null));
        // Then Podman's default connection (a Podman machine, a remote host), as `podman --remote` would use it.
        if (PodmanConnections.Find(null, environment, homeDirectory) is { } connection)
        {
            podman.Add(FromConnection(connection, "Podman's default connection"));
        }
        return new DockerEndpoint(ParseAddress(DefaultAddress, "the default"), "the default", null) { Fallbacks = podman };
    }

    /// <summary>This endpoint and its fallbacks, with the ssh program MsSshCommand names (empty: ssh).</summary>
    public DockerEndpoint WithSshCommand(IReadOnlyList<string> command) => command.Count == 0 ? this
        : this with { SshCommand = command, Fallbacks = [.. Fallbacks.Select(f => f with { SshCommand = command })] };

    /// <summary>The docker config folder (config.json, contexts/): DOCKER_CONFIG, else ~/.docker.</summary>
    public static string ConfigDirectory(Func<string, string?> environment, string homeDirectory) =>
        NonEmpty(environment("DOCKER_CONFIG")) ?? Path.Combine(homeDirectory, ".docker");

    private static DockerEndpoint FromHost(string value, string origin, string certPath, bool verify, bool tlsWithoutVerify)
    {
        var address = ParseAddress(value, origin);
        if (address.Scheme == "ssh")
        {
            return Secured(address, origin);
        }
        var tls = address.Scheme == "unix" ? null
            : verify ? new DockerTls(certPath, VerifyServer: true)
            : tlsWithoutVerify || address.Scheme == "https" ? new DockerTls(certPath, VerifyServer: false)
            : null;
        return new DockerEndpoint(WithDefaultPort(address, tls), origin, tls);
    }

    /// <summary>tcp://host without a port: docker's 2376 with TLS, 2375 without.</summary>
    private static Uri WithDefaultPort(Uri address, DockerTls? tls) =>
        address.Scheme == "tcp" && address.Port <= 0 ? new UriBuilder(address) { Port = tls is null ? 2375 : 2376 }.Uri : address;

    /// <summary>A docker context: contexts/meta/&lt;sha256 of the name&gt;/meta.json, its TLS files in contexts/tls/&lt;same&gt;/docker.</summary>
    private static DockerEndpoint FromContext(string name, string origin, string configDirectory, string? certPath, bool? explicitVerify)
    {
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        var metaFile = Path.Combine(configDirectory, "contexts", "meta", id, "meta.json");
        var describedOrigin = $"docker context '{name}' ({origin})";
        if (!File.Exists(metaFile))
        {
            throw new ImageBuildException(MsiCodes.DockerContextInvalid, MsiMessages.Format("DockerContextMissing", name, origin, metaFile));
        }
        string? host;
        bool skipVerify;
        try
        {
            using var meta = JsonDocument.Parse(File.ReadAllText(metaFile));
            var docker = meta.RootElement.GetProperty("Endpoints").GetProperty("docker");
            host = docker.TryGetProperty("Host", out var h) ? h.GetString() : null;
            skipVerify = docker.TryGetProperty("SkipTLSVerify", out var s) && s.ValueKind == JsonValueKind.True;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new ImageBuildException(MsiCodes.DockerContextInvalid, MsiMessages.Format("DockerContextUnreadable", name, metaFile, e.Message), metaFile, e);
        }
        var address = ParseAddress(NonEmpty(host) ?? DefaultAddress, describedOrigin);
        if (address.Scheme == "ssh")
        {
            return Secured(address, describedOrigin);
        }
        var contextTls = Path.Combine(configDirectory, "contexts", "tls", id, "docker");
        var hasTlsFiles = Directory.Exists(contextTls);
        var directory = certPath ?? contextTls;
        var verify = explicitVerify ?? (hasTlsFiles && !skipVerify);
        var tls = address.Scheme == "unix" ? null
            : verify ? new DockerTls(directory, VerifyServer: true)
            : hasTlsFiles || skipVerify || explicitVerify == false || certPath is not null || address.Scheme == "https" ? new DockerTls(directory, VerifyServer: false)
            : null;
        return new DockerEndpoint(WithDefaultPort(address, tls), describedOrigin, tls);
    }

    private static string? CurrentContext(string configDirectory)
    {
        var config = Path.Combine(configDirectory, "config.json");
        if (!File.Exists(config))
        {
            return null;
        }
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(config));
            return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("currentContext", out var current)
                ? NonEmpty(current.GetString())
                : null;
        }
        catch (JsonException e)
        {
            throw new ImageBuildException(MsiCodes.DockerContextInvalid, MsiMessages.Format("DockerConfigUnreadable", config, e.Message), config, e);
        }
    }

    /// <summary>A Podman connection: its address, and over ssh:// the key it names.</summary>
    private static DockerEndpoint FromConnection(PodmanConnections.Connection connection, string how)
    {
        var origin = $"{how}: Podman connection '{connection.Name}' ({connection.File})";
        var address = ParseAddress(connection.Uri, origin);
        return address.Scheme == "ssh" ? Secured(address, origin, connection.Identity) : new DockerEndpoint(address, origin, null);
    }

    /// <summary>An ssh:// endpoint: SSH secures it (no TLS), the tunnel reaches it.</summary>
    private static DockerEndpoint Secured(Uri address, string origin, string? identity = null) =>
        new(address, origin, null) { Ssh = SshTarget.Parse(address, origin) with { Identity = identity } };

    private static Uri ParseAddress(string value, string origin)
    {
        value = value.Trim();
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("unix" or "tcp" or "http" or "https" or "ssh")
            || (uri.Scheme != "unix" && (string.IsNullOrEmpty(uri.Host) || (uri.Port <= 0 && uri.Scheme is not ("tcp" or "ssh")))))
        {
            throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("DockerHostInvalid", value, origin));
        }
        return uri;
    }

    private static bool? ParseVerify(string? value) => NonEmpty(value)?.ToLowerInvariant() switch
    {
        null => null,
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        var other => throw new ImageBuildException(MsiCodes.DockerHostInvalid, MsiMessages.Format("DockerTlsVerifyInvalid", other)),
    };

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
