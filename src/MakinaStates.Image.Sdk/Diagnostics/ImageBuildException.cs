namespace MakinaStates.Image.Sdk.Diagnostics;

/// <summary>A failure the user can act on: carries the MSI code and, when known, the file or setting it concerns.</summary>
public sealed class ImageBuildException : Exception
{
    public ImageBuildException(string code, string message, string? file = null, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        File = file;
    }

    public string Code { get; }

    public string? File { get; }

    /// <summary>
    /// A script (or a command in a container) exited non-zero: the text <paramref name="textName"/> gets the exit code
    /// ({0}) and the script's last lines, one a line ({1}{2}: a line break, then the lines), and then
    /// <paramref name="details"/> ({3}…). The last lines are what the user needs to see why, so every such error has them.
    /// </summary>
    public static ImageBuildException ScriptFailed(string code, string textName, long exitCode, IEnumerable<string> lastLines, string? file = null,
        params object?[] details) =>
        new(code, MsiMessages.Format(textName, [exitCode, Environment.NewLine, string.Join(Environment.NewLine, lastLines), .. details]), file);
}
