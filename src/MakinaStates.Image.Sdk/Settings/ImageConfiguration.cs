using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// The committed image's configuration from MSBuild items, as the .NET SDK's container support does it:
/// MsLabel (Value), MsEnvironmentVariable (Value), MsPort (Type tcp|udp), MsVolume.
/// </summary>
public static class ImageConfiguration
{
    /// <summary>Later items win: the user's MsLabel items come after the generated ones.</summary>
    public static Dictionary<string, string> Labels(IEnumerable<ITaskItem> labels)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var label in labels)
        {
            result[label.ItemSpec] = label.GetMetadata("Value");
        }
        return result;
    }

    public static IList<string> Environment(IEnumerable<ITaskItem> variables) =>
        variables.Select(i => $"{i.ItemSpec}={i.GetMetadata("Value")}").ToList();

    public static IDictionary<string, Docker.DotNet.Models.EmptyStruct> ExposedPorts(IEnumerable<ITaskItem> ports)
    {
        var result = new Dictionary<string, Docker.DotNet.Models.EmptyStruct>();
        foreach (var port in ports)
        {
            var type = port.GetMetadata("Type") is { Length: > 0 } t ? t.ToLowerInvariant() : "tcp";
            if (!int.TryParse(port.ItemSpec, out var number) || number is < 1 or > 65535 || type is not ("tcp" or "udp"))
            {
                throw new Diagnostics.ImageBuildException(Diagnostics.MsiCodes.ImageConfigInvalid,
                    Diagnostics.MsiMessages.Format("PortInvalid", port.ItemSpec, type));
            }
            result[$"{number}/{type}"] = default;
        }
        return result;
    }

    public static IDictionary<string, Docker.DotNet.Models.EmptyStruct> Volumes(IEnumerable<ITaskItem> volumes)
    {
        var result = new Dictionary<string, Docker.DotNet.Models.EmptyStruct>();
        foreach (var volume in volumes)
        {
            if (!volume.ItemSpec.StartsWith('/'))
            {
                throw new Diagnostics.ImageBuildException(Diagnostics.MsiCodes.ImageConfigInvalid,
                    Diagnostics.MsiMessages.Format("VolumeInvalid", volume.ItemSpec));
            }
            result[volume.ItemSpec] = default;
        }
        return result;
    }
}
