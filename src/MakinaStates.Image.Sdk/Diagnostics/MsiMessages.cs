using System.Globalization;
using System.Resources;

namespace MakinaStates.Image.Sdk.Diagnostics;

/// <summary>The diagnostic texts, from Resources/Strings.resx (so they can be reviewed and translated in one place).</summary>
public static class MsiMessages
{
    private static readonly ResourceManager Resources = new("MakinaStates.Image.Sdk.Resources.Strings", typeof(MsiMessages).Assembly);

    public static string Format(string name, params object?[] arguments)
    {
        var text = Resources.GetString(name, CultureInfo.CurrentUICulture)
            ?? throw new InvalidOperationException($"No diagnostic text named '{name}' in Resources/Strings.resx.");
        return string.Format(CultureInfo.CurrentCulture, text, arguments);
    }
}
