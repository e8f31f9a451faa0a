using System.Text;
using System.Text.Json;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// Who pushes to a registry: MsRegistryUsername with MsRegistryPassword (or MS_REGISTRY_PASSWORD, which keeps the
/// secret out of MSBuild properties), else what `docker login` left in the docker config: a credential helper's
/// keychain (credHelpers, credsStore) or an `auths` entry. The password
/// is only ever handed to the engine; <see cref="Describe"/> is what the log may show.
/// </summary>
public sealed record RegistryCredentials(string Username, string Password, string IdentityToken, string Origin)
{
    public string Describe() => Username.Length > 0 ? $"user '{Username}' (from {Origin})" : $"an identity token (from {Origin})";

    public override string ToString() => Describe();

    /// <returns>null: push anonymously.</returns>
    public static RegistryCredentials? Resolve(string registry, string? username, string? password, Func<string, string?> environment, string homeDirectory)
    {
        var givenPassword = NonEmpty(password) ?? NonEmpty(environment("MS_REGISTRY_PASSWORD"));
        if (NonEmpty(username) is { } user)
        {
            return new RegistryCredentials(user, givenPassword ?? "", "", "MsRegistryUsername");
        }
        if (givenPassword is not null)
        {
            throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("RegistryPasswordWithoutUser"));
        }

        var config = Path.Combine(DockerEndpoint.ConfigDirectory(environment, homeDirectory), "config.json");
        if (!File.Exists(config))
        {
            return null;
        }
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(config));
            // docker's order: a helper for this registry (credHelpers), else the default store (credsStore), else auths.
            var helper = (document.RootElement.TryGetProperty("credHelpers", out var helpers) && helpers.ValueKind == JsonValueKind.Object
                    ? helpers.EnumerateObject().Where(h => SameRegistry(h.Name, registry)).Select(h => h.Value.GetString()).FirstOrDefault()
                    : null)
                ?? (document.RootElement.TryGetProperty("credsStore", out var store) ? store.GetString() : null);
            if (NonEmpty(helper) is { } helperName && CredentialHelper.Get(helperName, registry, config, environment) is { } stored)
            {
                return stored;
            }
            if (!document.RootElement.TryGetProperty("auths", out var auths) || auths.ValueKind != JsonValueKind.Object)
            {
                return null;
            }
            foreach (var entry in auths.EnumerateObject().Where(e => SameRegistry(e.Name, registry)))
            {
                var value = entry.Value;
                var token = value.TryGetProperty("identitytoken", out var t) ? t.GetString() ?? "" : "";
                if (value.TryGetProperty("auth", out var auth) && NonEmpty(auth.GetString()) is { } encoded)
                {
                    var pair = Encoding.UTF8.GetString(Convert.FromBase64String(encoded));
                    var colon = pair.IndexOf(':');
                    if (colon < 0)
                    {
                        throw new FormatException("no ':' between user and password");
                    }
                    return new RegistryCredentials(pair[..colon], pair[(colon + 1)..], token, config);
                }
                if (value.TryGetProperty("username", out var u) && NonEmpty(u.GetString()) is { } configUser)
                {
                    return new RegistryCredentials(configUser, value.TryGetProperty("password", out var p) ? p.GetString() ?? "" : "", token, config);
                }
                if (token.Length > 0)
                {
                    return new RegistryCredentials("", "", token, config);
                }
            }
            return null;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ImageBuildException(MsiCodes.RegistryCredentialsInvalid, MsiMessages.Format("RegistryCredentialsUnreadable", registry, config, e.Message), config, e);
        }
    }

    /// <summary>`auths` keys are written as host[:port] or as a URL ("https://index.docker.io/v1/" for Docker Hub).</summary>
    public static bool SameRegistry(string authsKey, string registry) =>
        string.Equals(Host(authsKey), Host(registry), StringComparison.OrdinalIgnoreCase);

    private static string Host(string value)
    {
        var host = value.Trim();
        var scheme = host.IndexOf("://", StringComparison.Ordinal);
        host = scheme >= 0 ? host[(scheme + 3)..] : host;
        host = host.Split('/')[0];
        return host is "index.docker.io" or "registry-1.docker.io" ? "docker.io" : host;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
