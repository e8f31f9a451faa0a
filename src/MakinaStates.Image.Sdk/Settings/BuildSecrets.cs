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
                throw new ImageBuildException(MsiCodes.SecretInvalid, MsiMessages.Format("SecretInvalid", name, Directory));
            }
            var file = item.GetMetadata("File");
            var variable = item.GetMetadata("EnvironmentVariable");
            if (file.Length > 0 == variable.Length > 0)
            {
                throw new ImageBuildException(MsiCodes.SecretInvalid, MsiMessages.Format("SecretInvalid_2", name));
            }
            if (file.Length > 0)
            {
                var path = Path.GetFullPath(file);
                if (!File.Exists(path))
                {
                    throw new ImageBuildException(MsiCodes.SecretInvalid, MsiMessages.Format("SecretInvalid_3", name, path), path);
                }
                secrets.Add(new Secret(name, () => File.ReadAllBytes(path)));
            }
            else
            {
                if (Environment.GetEnvironmentVariable(variable) is null)
                {
                    throw new ImageBuildException(MsiCodes.SecretInvalid, MsiMessages.Format("SecretInvalid_4", name, variable));
                }
                secrets.Add(new Secret(name, () => System.Text.Encoding.UTF8.GetBytes(Environment.GetEnvironmentVariable(variable) ?? "")));
            }
        }
        return secrets;
    }
}
