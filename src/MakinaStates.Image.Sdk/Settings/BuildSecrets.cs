using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Diagnostics;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// MsSecret items: a name and where its value comes from, a file (metadata File) or an environment variable of the
/// build (metadata EnvironmentVariable). Values are read only when they are written into the build container.
/// </summary>
public static partial class BuildSecrets
{
    /// <summary>Where stage2.sh and stage3.sh find them: a tmpfs, never committed.</summary>
    public const string Directory = "/run/secrets";

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")]
    private static partial Regex ValidName();

    public sealed record Secret(string Name, Func<byte[]> ReadValue);

    public static IReadOnlyList<Secret> Resolve(IEnumerable<ITaskItem> items)
    {
        var secrets = new List<Secret>();
        foreach (var item in items)
        {
            var name = item.ItemSpec;
            if (!ValidName().IsMatch(name) || name is "." or "..")
            {
                throw new ImageBuildException(MsiCodes.SecretInvalid, $"MsSecret '{name}': a secret name is letters, digits, '.', '_' and '-' (it becomes {Directory}/<name>).");
            }
            var file = item.GetMetadata("File");
            var variable = item.GetMetadata("EnvironmentVariable");
            if (file.Length > 0 == variable.Length > 0)
            {
                throw new ImageBuildException(MsiCodes.SecretInvalid, $"MsSecret '{name}' needs exactly one of the metadata File (a path) or EnvironmentVariable (a variable name).");
            }
            if (file.Length > 0)
            {
                var path = Path.GetFullPath(file);
                if (!File.Exists(path))
                {
                    throw new ImageBuildException(MsiCodes.SecretInvalid, $"MsSecret '{name}': its file '{path}' does not exist.", path);
                }
                secrets.Add(new Secret(name, () => File.ReadAllBytes(path)));
            }
            else
            {
                if (Environment.GetEnvironmentVariable(variable) is null)
                {
                    throw new ImageBuildException(MsiCodes.SecretInvalid, $"MsSecret '{name}': the environment variable '{variable}' is not set.");
                }
                secrets.Add(new Secret(name, () => System.Text.Encoding.UTF8.GetBytes(Environment.GetEnvironmentVariable(variable) ?? "")));
            }
        }
        return secrets;
    }
}
