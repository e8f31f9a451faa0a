using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Registry;

/// <summary>A manifest as the registry describes it: what it is, its content digest and its size in bytes.</summary>
public sealed record ManifestDescriptor(string MediaType, string Digest, long Size);

/// <summary>
/// What kind of failure talking to a registry met: our own calls (<see cref="RegistryApi"/>) and the engine's push
/// (<see cref="Engine.RegistryPush.Classify"/>) alike, so each kind maps to the same diagnostic code.
/// </summary>
public enum RegistryFailure
{
    Unreachable,
    Unauthorized,
    /// <summary>The registry does not have a layer the push relies on (a push of layers it dropped, or mounted from elsewhere).</summary>
    BlobUnknown,
    /// <summary>Refused for another reason, or failed on the engine's side.</summary>
    Other,
}

public sealed class RegistryApiException(RegistryFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public RegistryFailure Failure { get; } = failure;
}

/// <summary>
/// The manifest calls of the registry HTTP API v2 (distribution), for one repository, made as docker makes them:
/// https first, plain http only to a loopback registry (docker's default insecure range); on a 401 the challenge
/// decides between basic credentials and a bearer token from the challenge's realm.
/// </summary>
public sealed class RegistryApi : IDisposable
{
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";

    private static readonly string[] ManifestTypes = [DockerManifest, DockerManifestList, OciManifest, OciIndex];

    private readonly HttpClient _http;
    private readonly string _registry;
    private readonly string _repository;
    private readonly RegistryCredentials? _credentials;
    private string? _scheme;
    private AuthenticationHeaderValue? _authorization;

    /// <param name="registry">host[:port]</param>
    /// <param name="repository">The path in the registry (team/app).</param>
    /// <param name="certificatesDirectory">docker's per-registry CAs: &lt;dir&gt;/&lt;registry&gt;/ca.crt.</param>
    public RegistryApi(string registry, string repository, RegistryCredentials? credentials, string certificatesDirectory = "/etc/docker/certs.d")
    {
        _registry = registry;
        _repository = repository;
        _credentials = credentials;
        var authorities = RegistryAuthorities(Path.Combine(certificatesDirectory, registry));
        var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(15), AllowAutoRedirect = true };
        if (authorities.Count > 0)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                errors == SslPolicyErrors.None || (errors == SslPolicyErrors.RemoteCertificateChainErrors && certificate is X509Certificate2 leaf
                    && ChainsTo(leaf, chain, authorities));
        }
        _http = new HttpClient(handler) { Timeout = TimeSpan.FromMinutes(2) };
    }

    /// <summary>HEAD of a manifest by tag or digest; null when the registry has none by that reference.</summary>
    public async Task<ManifestDescriptor?> HeadManifestAsync(string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => ManifestRequest(HttpMethod.Head, reference), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        await EnsureSuccessAsync(response, $"HEAD manifest {reference}", cancellationToken).ConfigureAwait(false);
        var digest = DigestHeader(response);
        if (digest is null || response.Content.Headers.ContentLength is not { } size)
        {
            // A registry that omits them on HEAD still serves the body.
            return (await GetManifestAsync(reference, cancellationToken).ConfigureAwait(false))?.Descriptor;
        }
        return new ManifestDescriptor(MediaTypeOf(response), digest, size);
    }

    /// <summary>GET of a manifest by tag or digest; null when the registry has none by that reference.</summary>
    public async Task<(ManifestDescriptor Descriptor, byte[] Body)?> GetManifestAsync(string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => ManifestRequest(HttpMethod.Get, reference), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        await EnsureSuccessAsync(response, $"GET manifest {reference}", cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        return (new ManifestDescriptor(MediaTypeOf(response), DigestHeader(response) ?? DigestOf(body), body.Length), body);
    }

    /// <returns>The digest the registry reports for the manifest it stored (sha256 of the body when it reports none).</returns>
    public async Task<string> PutManifestAsync(string reference, byte[] body, string mediaType, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() =>
        {
            var request = new HttpRequestMessage(HttpMethod.Put, ManifestUri(reference)) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return request;
        }, cancellationToken).ConfigureAwait(false);
        await EnsureSuccessAsync(response, $"PUT manifest {reference}", cancellationToken).ConfigureAwait(false);
        return DigestHeader(response) ?? DigestOf(body);
    }

    public static string DigestOf(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>
    /// A WWW-Authenticate value: the scheme and its auth-params (Bearer realm="…",service="…",scope="…"); quoted values
    /// may hold commas and backslash escapes. Null when it names no scheme.
    /// </summary>
    public static (string Scheme, IReadOnlyDictionary<string, string> Parameters)? ParseChallenge(string? header)
    {
        var text = header?.Trim() ?? "";
        var space = text.IndexOf(' ');
        var scheme = space < 0 ? text : text[..space];
        if (scheme.Length == 0)
        {
            return null;
        }
        var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var position = space < 0 ? text.Length : space + 1;
        while (position < text.Length)
        {
            while (position < text.Length && (text[position] == ',' || char.IsWhiteSpace(text[position])))
            {
                position++;
            }
            var equals = text.IndexOf('=', position);
            if (equals < 0)
            {
                break;
            }
            var name = text[position..equals].Trim();
            position = equals + 1;
            var value = new StringBuilder();
            if (position < text.Length && text[position] == '"')
            {
                for (position++; position < text.Length && text[position] != '"'; position++)
                {
                    if (text[position] == '\\' && position + 1 < text.Length)
                    {
                        position++;
                    }
                    value.Append(text[position]);
                }
                position++;
            }
            else
            {
                for (; position < text.Length && text[position] != ','; position++)
                {
                    value.Append(text[position]);
                }
            }
            parameters[name] = value.ToString().Trim();
        }
        return (scheme, parameters);
    }

    /// <summary>localhost, 127.0.0.0/8 and ::1 (with or without a port): the registries docker reaches over plain http.</summary>
    public static bool IsLoopback(string registry)
    {
        var host = registry.StartsWith('[') ? registry[1..Math.Max(1, registry.IndexOf(']'))]
            : registry.Count(c => c == ':') == 1 ? registry[..registry.IndexOf(':')] : registry;
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(host, out var address) && IPAddress.IsLoopback(address));
    }

    public void Dispose() => _http.Dispose();

    private Uri ManifestUri(string reference) => new($"{_scheme ?? "https"}://{_registry}/v2/{_repository}/manifests/{reference}");

    private HttpRequestMessage ManifestRequest(HttpMethod method, string reference)
    {
        var request = new HttpRequestMessage(method, ManifestUri(reference));
        foreach (var type in ManifestTypes)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }
        return request;
    }

    /// <summary>One call, with the scheme and authorization found on the first one; a 401 is answered once.</summary>
    private async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> request, CancellationToken cancellationToken)
    {
        var response = await SendOnSchemeAsync(request, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return response;
        }
        var challenge = ParseChallenge(response.Headers.WwwAuthenticate.FirstOrDefault()?.ToString());
        // A HEAD's 401 has no body: the call and the challenge say what was refused.
        var refused = $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.AbsolutePath}: 401 {await ErrorTextAsync(response, cancellationToken).ConfigureAwait(false)}"
            + (challenge is { } asked ? $" (the registry asks for {asked.Scheme} authentication{(_credentials is null ? " and no credentials were given" : "")})" : "");
        response.Dispose();
        _authorization = challenge switch
        {
            ({ } scheme, _) when scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase) && _credentials is { Username.Length: > 0 } =>
                BasicAuthorization(_credentials),
            ({ } scheme, var parameters) when scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase) =>
                new AuthenticationHeaderValue("Bearer", await TokenAsync(parameters, cancellationToken).ConfigureAwait(false)),
            _ => throw new RegistryApiException(RegistryFailure.Unauthorized, refused),
        };
        return await SendOnSchemeAsync(request, cancellationToken).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> SendOnSchemeAsync(Func<HttpRequestMessage> create, CancellationToken cancellationToken)
    {
        while (true)
        {
            using var request = create();
            request.Headers.Authorization = _authorization;
            try
            {
                var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
                _scheme ??= "https";
                return response;
            }
            catch (HttpRequestException) when (_scheme is null && IsLoopback(_registry))
            {
                // docker's insecure default: a loopback registry that does not speak TLS is reached over http.
                _scheme = "http";
            }
            catch (HttpRequestException e)
            {
                throw new RegistryApiException(RegistryFailure.Unreachable, $"{request.RequestUri}: {Innermost(e)}", e);
            }
            catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new RegistryApiException(RegistryFailure.Unreachable, $"{request.RequestUri}: no answer within {_http.Timeout.TotalSeconds:0} s", e);
            }
        }
    }

    /// <summary>docker's token flow: an identity token is exchanged by OAuth POST, else a GET with basic credentials (or none).</summary>
    private async Task<string> TokenAsync(IReadOnlyDictionary<string, string> challenge, CancellationToken cancellationToken)
    {
        if (!challenge.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri))
        {
            throw new RegistryApiException(RegistryFailure.Unauthorized, "the registry asks for a bearer token without naming a valid realm");
        }
        var scope = $"repository:{_repository}:pull,push";
        var service = challenge.TryGetValue("service", out var named) ? named : "";
        using var request = _credentials is { IdentityToken.Length: > 0 } withToken
            ? new HttpRequestMessage(HttpMethod.Post, realmUri)
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string>
                {
                    ["grant_type"] = "refresh_token", ["refresh_token"] = withToken.IdentityToken, ["service"] = service, ["scope"] = scope,
                    ["client_id"] = "makinastates-image-sdk",
                }),
            }
            : new HttpRequestMessage(HttpMethod.Get, new UriBuilder(realmUri)
            {
                Query = string.Join('&', new[] { realmUri.Query.TrimStart('?'), $"service={Uri.EscapeDataString(service)}", $"scope={Uri.EscapeDataString(scope)}" }
                    .Where(p => p.Length > 0)),
            }.Uri);
        if (_credentials is { Username.Length: > 0, IdentityToken.Length: 0 })
        {
            request.Headers.Authorization = BasicAuthorization(_credentials);
        }
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new RegistryApiException(RegistryFailure.Unreachable, $"the token service {realmUri.GetLeftPart(UriPartial.Path)}: {Innermost(e)}", e);
        }
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw new RegistryApiException(response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? RegistryFailure.Unauthorized : RegistryFailure.Other,
                    $"the token service {realmUri.GetLeftPart(UriPartial.Path)} answered {(int)response.StatusCode}: {await ErrorTextAsync(response, cancellationToken).ConfigureAwait(false)}");
            }
            using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false));
            foreach (var name in new[] { "token", "access_token" })
            {
                if (document.RootElement.TryGetProperty(name, out var token) && token.GetString() is { Length: > 0 } value)
                {
                    return value;
                }
            }
            throw new RegistryApiException(RegistryFailure.Unauthorized, $"the token service {realmUri.GetLeftPart(UriPartial.Path)} gave no token");
        }
    }

    private static async Task EnsureSuccessAsync(HttpResponseMessage response, string call, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        var failure = response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? RegistryFailure.Unauthorized : RegistryFailure.Other;
        throw new RegistryApiException(failure, $"{call}: {(int)response.StatusCode} {await ErrorTextAsync(response, cancellationToken).ConfigureAwait(false)}");
    }

    /// <summary>The registry's errors ({"errors":[{"code","message"}]}) as "CODE: message", else the status.</summary>
    private static async Task<string> ErrorTextAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var document = JsonDocument.Parse(body);
            if (document.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array && errors.GetArrayLength() > 0)
            {
                return string.Join("; ", errors.EnumerateArray().Select(e =>
                    $"{(e.TryGetProperty("code", out var c) ? c.GetString() : "")}: {(e.TryGetProperty("message", out var m) ? m.GetString() : "")}"));
            }
        }
        catch (JsonException)
        {
        }
        return body.Trim() is { Length: > 0 and < 300 } text ? text : response.ReasonPhrase ?? response.StatusCode.ToString();
    }

    private static AuthenticationHeaderValue BasicAuthorization(RegistryCredentials credentials) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{credentials.Username}:{credentials.Password}")));

    private static string? DigestHeader(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;

    private static string MediaTypeOf(HttpResponseMessage response) =>
        response.Content.Headers.ContentType?.MediaType ?? "";

    private static string Innermost(Exception e)
    {
        var messages = new List<string>();
        for (Exception? current = e; current is not null; current = current.InnerException)
        {
            messages.Add(current.Message);
        }
        return string.Join(": ", messages.Distinct());
    }

    private static X509Certificate2Collection RegistryAuthorities(string directory)
    {
        var authorities = new X509Certificate2Collection();
        var file = Path.Combine(directory, "ca.crt");
        if (File.Exists(file))
        {
            authorities.ImportFromPemFile(file);
        }
        return authorities;
    }

    /// <summary>docker adds certs.d's ca.crt to the system's roots: the server's chain may end at either.</summary>
    private static bool ChainsTo(X509Certificate2 leaf, X509Chain? presented, X509Certificate2Collection authorities)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }
        return chain.Build(leaf);
    }
}
