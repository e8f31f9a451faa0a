using System.Security.Cryptography;
using Docker.DotNet.Handler.Abstractions;
using Docker.DotNet.X509;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The client side of a TLS engine, from the same files docker reads (ca.pem, cert.pem, key.pem): the client
/// certificate proves who we are; ca.pem is the only authority the engine's certificate may chain to.
/// </summary>
internal static class EngineTlsCredentials
{
    public static IAuthProvider Create(DockerTls tls, DockerEndpoint endpoint)
    {
        var ca = Path.Combine(tls.CertificateDirectory, "ca.pem");
        var certificate = Path.Combine(tls.CertificateDirectory, "cert.pem");
        var key = Path.Combine(tls.CertificateDirectory, "key.pem");
        var needed = tls.VerifyServer ? new[] { ca, certificate, key } : [certificate, key];
        if (needed.Where(f => !File.Exists(f)).ToList() is { Count: > 0 } missing)
        {
            throw new ImageBuildException(MsiCodes.EngineTlsFilesInvalid,
                MsiMessages.Format("EngineTlsFilesMissing", endpoint.Describe(), string.Join(", ", missing)), missing[0]);
        }
        try
        {
            var credentials = new CertificateCredentials(DockerTlsCertificates.LoadCertificateFromPemFiles(certificate, key));
            credentials.ServerCertificateValidationCallback = tls.VerifyServer
                ? DockerTlsCertificates.CreateCertificateAuthorityValidationCallback(DockerTlsCertificates.LoadCertificateAuthorityFromPemFile(ca))
                // MsDockerTlsVerify=false / DOCKER_TLS: encrypted, but the engine is taken on trust, as `docker --tls` does.
                : (_, _, _, _) => true;
            return credentials;
        }
        catch (CryptographicException e)
        {
            throw new ImageBuildException(MsiCodes.EngineTlsFilesInvalid,
                MsiMessages.Format("EngineTlsFilesUnreadable", endpoint.Describe(), tls.CertificateDirectory, e.Message), certificate, e);
        }
    }
}
