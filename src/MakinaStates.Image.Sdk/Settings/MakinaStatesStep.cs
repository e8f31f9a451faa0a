using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// MsMakinaStates: whether stage2 installs makina-states ("with or WITHOUT makina-states", as the seed says).
/// auto runs it for corpus projects and makina-states base images (…/makina-states-&lt;os&gt;-&lt;release&gt;); a
/// non-empty MsMakinaStatesBuildForce keeps the seed's meaning (run it, refresh an installation) and implies true.
/// </summary>
public static class MakinaStatesStep
{
    public sealed record Decision(bool Runs, string Reason);

    public static Decision Resolve(string setting, string buildForce, bool corpusProject, ImageReference image, string os, string release)
    {
        var mode = setting.Trim().ToLowerInvariant();
        if (mode is not ("" or "auto" or "true" or "false"))
        {
            throw new ImageBuildException(MsiCodes.SettingChoiceInvalid,
                MsiMessages.Format("SettingChoiceInvalid", "MsMakinaStates", setting, "auto, true, false", "MS_MAKINASTATES"));
        }
        if (!string.IsNullOrEmpty(buildForce))
        {
            return new(true, "MsMakinaStatesBuildForce is set");
        }
        return mode switch
        {
            "true" => new(true, "MsMakinaStates=true"),
            "false" => new(false, "MsMakinaStates=false"),
            _ when corpusProject => new(true, "a corpus project, MsMakinaStates=auto"),
            _ when image.Repository.Split('/')[^1] == $"makina-states-{os}-{release}" => new(true, $"{image.Repository} is a makina-states base image, MsMakinaStates=auto"),
            _ => new(false, "MsMakinaStates=auto: neither a corpus project nor a makina-states base image"),
        };
    }
}
