using System.Text;
using System.Text.Json;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// A commit's image config as Dockerfile instructions (the API's `changes`). Podman's compatible commit ignores the
/// config in the request body and keeps the container's (its per-build labels, no stop signal): it applies only these.
/// Docker gets the config itself, which carries any value exactly.
/// </summary>
public static class CommitChanges
{
    public static IList<string> From(CommitContainerChangesParameters commit)
    {
        var changes = new List<string>();
        if (commit.Cmd is { Count: > 0 } cmd)
        {
            changes.Add("CMD " + JsonSerializer.Serialize(cmd));
        }
        if (!string.IsNullOrEmpty(commit.StopSignal))
        {
            changes.Add("STOPSIGNAL " + commit.StopSignal);
        }
        foreach (var variable in commit.Env ?? [])
        {
            var equals = variable.IndexOf('=');
            changes.Add(equals > 0 ? $"ENV {Quote(variable[..equals])}={Quote(variable[(equals + 1)..])}" : $"ENV {Quote(variable)}=");
        }
        foreach (var (name, value) in commit.Labels ?? new Dictionary<string, string>())
        {
            changes.Add($"LABEL {Quote(name)}={Quote(value)}");
        }
        foreach (var port in commit.ExposedPorts?.Keys ?? [])
        {
            changes.Add("EXPOSE " + port);
        }
        if (commit.Volumes is { Count: > 0 } volumes)
        {
            changes.Add("VOLUME " + JsonSerializer.Serialize(volumes.Keys));
        }
        return changes;
    }

    /// <summary>A double-quoted Dockerfile word. One change is one line: a line break in a value becomes a space.</summary>
    internal static string Quote(string value)
    {
        var quoted = new StringBuilder("\"");
        foreach (var c in value)
        {
            quoted.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '$' => "\\$",
                '\n' or '\r' => " ",
                _ => c.ToString(),
            });
        }
        return quoted.Append('"').ToString();
    }
}
