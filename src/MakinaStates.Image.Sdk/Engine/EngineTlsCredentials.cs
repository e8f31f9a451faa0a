using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Docker.DotNet.Handler.Abstractions;
using Docker.DotNet.X509;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The client side of a TLS engine, from the files docker reads: cert.pem/key.pem (optional, as for docker) prove who
/// we are; with verification the engine's certificate must chain to ca.pem alone, be a server certificate and name
/// the host we connect to — what `docker --tlsverify` checks. The reason of a rejection is kept for the error.
/// </summary>
internal sealed class EngineTlsCredentials : IAuthProvider
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private readonly X509Certificate2? _client;
    private readonly X509Certificate2Collection? _authority;

    private EngineTlsCredentials(X509Certificate2? client, X509Certificate2Collection? authority)
    {
        _client = client;
        _authority = authority;
    }

    public bool TlsEnabled => true;

    /// <summary>Why the engine's certificate was refused, once the handshake failed.</summary>
    public string? Rejection { get; private set; }

    public static EngineTlsCredentials Create(DockerTls tls, DockerEndpoint endpoint)
    {
        var ca = Path.Combine(tls.CertificateDirectory, "ca.pem");
        var certificate = Path.Combine(tls.CertificateDirectory, "cert.pem");
        var key = Path.Combine(tls.CertificateDirectory, "key.pem");
        var missing = new List<string>();
        if (tls.VerifyServer && !File.Exists(ca))
        {
            missing.Add(ca);
        }
        // Like docker: no client certificate is fine, half of one is a mistake.
        if (File.Exists(certificate) != File.Exists(key))
        {
            missing.Add(File.Exists(certificate) ? key : certificate);
        }
        if (missing.Count > 0)
        {
            throw new ImageBuildException(MsiCodes.EngineTlsFilesInvalid,
                MsiMessages.Format("EngineTlsFilesMissing", endpoint.Describe(), string.Join(", ", missing)), missing[0]);
        }
        try
        {
            return new EngineTlsCredentials(
                File.Exists(certificate) ? DockerTlsCertificates.LoadCertificateFromPemFiles(certificate, key) : null,
                tls.VerifyServer ? LoadAuthorities(ca) : null);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new ImageBuildException(MsiCodes.EngineTlsFilesInvalid,
                MsiMessages.Format("EngineTlsFilesUnreadable", endpoint.Describe(), tls.CertificateDirectory, e.Message), certificate, e);
        }
    }

    /// <summary>Every certificate of ca.pem: a bundle (a CA being rotated, or an intermediate with its root) is trusted whole, as by docker.</summary>
    private static X509Certificate2Collection LoadAuthorities(string ca)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(ca);
        return authorities.Count > 0 ? authorities : throw new CryptographicException($"no certificate in {ca}");
    }

    public HttpMessageHandler ConfigureHandler(HttpMessageHandler handler)
    {
        X509CertificateCollection clients = _client is null ? [] : [_client];
        switch (handler)
        {
            case Microsoft.Net.Http.Client.ManagedHandler managed:
                managed.ClientCertificates = clients;
                managed.ServerCertificateValidationCallback = Validate;
                break;
            case SocketsHttpHandler sockets:
                sockets.SslOptions.ClientCertificates = clients;
                sockets.SslOptions.RemoteCertificateValidationCallback = Validate;
                break;
            default:
                throw new NotSupportedException($"TLS for a Docker.DotNet transport with {handler.GetType().Name}");
        }
        return handler;
    }

    private bool Validate(object sender, X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors)
    {
        if (_authority is null)
        {
            // MsDockerTlsVerify=false / DOCKER_TLS: encrypted, but the engine is taken on trust, as `docker --tls` does.
            return true;
        }
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            Rejection = "the engine sent no certificate";
            return false;
        }
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            Rejection = $"the engine's certificate ({certificate.Subject}) does not name the host connected to";
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(_authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(ServerAuthentication);
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }
        using var server = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (!chain.Build(server))
        {
            Rejection = $"the engine's certificate ({server.Subject}, issued by {server.Issuer}) was refused: "
                + string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
            return false;
        }
        return true;
    }
}
