using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// MsInit: whether the image runs an init (systemd) as PID 1, as the seed allows "running systemd or not". Without one
/// the build container's PID 1 only keeps it up, nothing waits for a boot, and MsCommand is the committed Cmd only.
/// </summary>
public static class InitSystem
{
    public const string Systemd = "systemd";
    public const string None = "none";

    /// <summary>PID 1 of a build container without init: waits, and stops at once on SIGTERM.</summary>
    public static readonly string[] KeepAlive = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"];

    /// <summary>auto: systemd when MsCommand's first word is an init (/sbin/init, /usr/sbin/init, init, or a systemd binary).</summary>
    public static string Resolve(string setting, string command) => setting.Trim().ToLowerInvariant() switch
    {
        "" or "auto" => IsInit(ShellWords.Split(command).FirstOrDefault() ?? "") ? Systemd : None,
        Systemd => Systemd,
        None => None,
        _ => throw new ImageBuildException(MsiCodes.SettingChoiceInvalid,
            MsiMessages.Format("SettingChoiceInvalid", "MsInit", setting, "auto, systemd, none", "MS_INIT")),
    };

    private static bool IsInit(string program) =>
        program is "/sbin/init" or "/usr/sbin/init" or "init" || Path.GetFileName(program) == "systemd";
}
