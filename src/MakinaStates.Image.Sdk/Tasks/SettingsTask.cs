using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Description = MakinaStates.Image.Sdk.Settings.BuildDescription;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// A task that takes the build's settings themselves (Stage0, and Clean's image removal), as MsResolveSettings collected
/// them when the build reached it: every setting once, as items, and the items of the project.
/// </summary>
public abstract class SettingsTask : ImageBuildTask
{
    /// <summary>One item per setting: the property name, Value = its value (MsResolveSettings' _MsSetting items).</summary>
    [Required] public ITaskItem[] Settings { get; set; } = [];

    public ITaskItem[] InjectedVolumes { get; set; } = [];
    public ITaskItem[] Secrets { get; set; } = [];
    public ITaskItem[] Ports { get; set; } = [];
    public ITaskItem[] Volumes { get; set; } = [];
    public ITaskItem[] EnvironmentVariables { get; set; } = [];

    /// <summary>The generated org.opencontainers.image.* labels, then the MsLabel items (Value metadata).</summary>
    public ITaskItem[] Labels { get; set; } = [];

    protected sealed override Description DescribeBuild()
    {
        var description = new Description();
        foreach (var setting in Settings)
        {
            description.Set(setting.ItemSpec, setting.GetMetadata("Value"));
        }
        // By full path: the item's own FullPath is computed from the project's folder, which a later task may not share.
        description.InjectedVolumes = [.. InjectedVolumes.Select(i => Description.Item.From(i, "TargetPath") with { Spec = i.GetMetadata("FullPath") is { Length: > 0 } full ? full : i.ItemSpec })];
        description.Secrets = [.. Secrets.Select(i => Description.Item.From(i, "File", "EnvironmentVariable"))];
        description.Ports = [.. Ports.Select(i => Description.Item.From(i, "Type"))];
        description.Volumes = [.. Volumes.Select(i => Description.Item.From(i))];
        description.EnvironmentVariables = [.. EnvironmentVariables.Select(i => Description.Item.From(i, "Value"))];
        description.Labels = [.. Labels.Select(i => Description.Item.From(i, "Value"))];
        return description;
    }
}
