using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Registry;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// One `docker push` through the engine's API: the engine talks to the registry, we pass the credentials in the
/// X-Registry-Auth header and read the digest from the push's final message.
/// </summary>
public static class RegistryPush
{
    /// <summary>What kind of failure the engine's push error text describes (the engine passes the registry's words on).</summary>
    public static RegistryFailure Classify(string error)
    {
        var text = error.ToLowerInvariant();
        return text switch
        {
            _ when text.Contains("blob unknown") || text.Contains("blob_unknown") => RegistryFailure.BlobUnknown,
            _ when text.Contains("unauthorized") || text.Contains("authentication required") || text.Contains("no basic auth credentials")
                || text.Contains("denied:") || text.Contains("requested access to the resource is denied")
                || text.Contains("incorrect username or password") => RegistryFailure.Unauthorized,
            _ when text.Contains("connection refused") || text.Contains("no such host") || text.Contains("i/o timeout") || text.Contains("no route to host")
                || text.Contains("connection reset") || text.Contains("dial tcp") || text.Contains("server gave http response to https client")
                || text.Contains("tls: ") || text.Contains("x509: ") => RegistryFailure.Unreachable,
            _ => RegistryFailure.Other,
        };
    }

    /// <summary>The digest in a push's final status line, "&lt;tag&gt;: digest: sha256:… size: N", if it is one.</summary>
    internal static string? DigestInStatus(string? status, string tag) =>
        status is not null && System.Text.RegularExpressions.Regex.Match(status, @"^(?<tag>\S+): digest: (?<digest>sha256:[0-9a-f]{64}) size: \d+$") is { Success: true } m
            && m.Groups["tag"].Value == tag ? m.Groups["digest"].Value : null;

    /// <returns>The manifest digest the registry now serves for repository:tag.</returns>
    public static async Task<string> PushAsync(DockerEngine engine, string registry, string repository, string tag, AuthConfig auth, string pusher,
        Action<string> detail, CancellationToken cancellationToken)
    {
        string? error = null;
        string? digest = null;
        var progress = new ImmediateProgress<JSONMessage>(message =>
        {
            if (message.Error?.Message is { Length: > 0 } failed)
            {
                error ??= failed;
            }
            if (message.Aux?.ExtensionData is { } aux && aux.TryGetValue("Digest", out var value) && value?.ToString() is { Length: > 0 } reported)
            {
                digest = reported;
            }
            if (digest is null && DigestInStatus(message.Status, tag) is { } stated)
            {
                // Podman reports it only this way: "<tag>: digest: sha256:… size: N" (Docker also in Aux).
                digest = stated;
            }
            if (message.Progress is null && message.Status is { Length: > 0 } status)
            {
                detail(message.ID is { Length: > 0 } id ? $"{id}: {status}" : status);
            }
        });
        try
        {
            await engine.Client.Images.PushImageAsync(repository, new ImagePushParameters { Tag = tag }, auth, progress, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e)
        {
            error ??= e.ResponseBody?.Trim() is { Length: > 0 } body ? body : e.Message;
        }

        var reference = $"{repository}:{tag}";
        if (error is not null)
        {
            throw Classify(error) switch
            {
                RegistryFailure.Unreachable => new ImageBuildException(MsiCodes.RegistryUnreachable, MsiMessages.Format("RegistryUnreachable", registry, reference, error)),
                RegistryFailure.Unauthorized => new ImageBuildException(MsiCodes.RegistryUnauthorized, MsiMessages.Format("RegistryUnauthorized", registry, reference, pusher, error)),
                RegistryFailure.BlobUnknown => new ImageBuildException(MsiCodes.RegistryBlobUnknown, MsiMessages.Format("RegistryBlobUnknown", registry, reference, error)),
                _ => new ImageBuildException(MsiCodes.PushFailed, MsiMessages.Format("PushFailed", registry, reference, error)),
            };
        }
        return digest ?? throw new ImageBuildException(MsiCodes.PushFailed,
            MsiMessages.Format("PushFailed", registry, reference, "the engine finished without reporting the manifest digest"));
    }
}
