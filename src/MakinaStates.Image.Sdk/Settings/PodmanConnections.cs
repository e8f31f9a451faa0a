using System.Text.Json;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// Podman's named connections (`podman system connection add`), where Podman keeps them: Podman 5's
/// podman-connections.json, then containers.conf ([engine] active_service, [engine.service_destinations.&lt;name&gt;]:
/// Podman 4, and every Podman machine before 5). The system's containers.conf is read first and the user's wins, as
/// Podman reads them. Each has an address (ssh:// for a machine or a remote host) and the key to log in with.
/// </summary>
public static class PodmanConnections
{
    public sealed record Connection(string Name, string Uri, string? Identity, string File);

    /// <summary>The connection named <paramref name="name"/>, or the default one when <paramref name="name"/> is null; null when there is none.</summary>
    public static Connection? Find(string? name, Func<string, string?> environment, string homeDirectory)
    {
        var configHome = NonEmpty(environment("XDG_CONFIG_HOME")) ?? Path.Combine(homeDirectory, ".config");
        var json = Path.Combine(configHome, "containers", "podman-connections.json");
        if (FromJson(json, name) is { } fromJson)
        {
            return fromJson;
        }
        var files = NonEmpty(environment("CONTAINERS_CONF")) is { } only ? [only]
            : new[] { "/usr/share/containers/containers.conf", "/etc/containers/containers.conf", Path.Combine(configHome, "containers", "containers.conf") };
        string? active = null;
        var destinations = new Dictionary<string, Connection>(StringComparer.Ordinal);
        foreach (var file in files.Where(System.IO.File.Exists))
        {
            if (Read(file) is not { } model
                || !model.TryGetValue("engine", out var engineValue) || engineValue is not Tomlyn.Model.TomlTable)
            {
                continue;
            }
            var engine = (Tomlyn.Model.TomlTable)engineValue;
            if (engine.TryGetValue("active_service", out var activeValue) && activeValue is string activeName && activeName.Length > 0)
            {
                active = activeName;
            }
            if (engine.TryGetValue("service_destinations", out var destinationsValue) && destinationsValue is Tomlyn.Model.TomlTable table)
            {
                foreach (var (destinationName, value) in table)
                {
                    if (value is Tomlyn.Model.TomlTable destination && destination.TryGetValue("uri", out var uri) && uri is string address)
                    {
                        destinations[destinationName] = new Connection(destinationName, address,
                            destination.TryGetValue("identity", out var identity) ? NonEmpty(identity as string) : null, file);
                    }
                }
            }
        }
        return destinations.GetValueOrDefault(name ?? active ?? "");
    }

    /// <summary>A containers.conf as TOML; one Podman itself could not read is no connection either.</summary>
    private static Tomlyn.Model.TomlTable? Read(string file)
    {
        try
        {
            return Tomlyn.TomlSerializer.Deserialize<Tomlyn.Model.TomlTable>(System.IO.File.ReadAllText(file));
        }
        catch (Exception e) when (e is Tomlyn.TomlException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>{"Connection": {"Default": "name", "Connections": {"name": {"URI": "...", "Identity": "..."}}}}</summary>
    private static Connection? FromJson(string file, string? name)
    {
        if (!System.IO.File.Exists(file))
        {
            return null;
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(System.IO.File.ReadAllText(file));
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
        using var _ = document;
        if (!document.RootElement.TryGetProperty("Connection", out var connection)
            || !connection.TryGetProperty("Connections", out var connections) || connections.ValueKind != JsonValueKind.Object)
        {
            return null;
        }
        var wanted = name ?? (connection.TryGetProperty("Default", out var fallback) ? fallback.GetString() : null);
        if (wanted is null || !connections.TryGetProperty(wanted, out var chosen) || !chosen.TryGetProperty("URI", out var uri) || uri.GetString() is not { Length: > 0 } address)
        {
            return null;
        }
        return new Connection(wanted, address, chosen.TryGetProperty("Identity", out var identity) ? NonEmpty(identity.GetString()) : null, file);
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
