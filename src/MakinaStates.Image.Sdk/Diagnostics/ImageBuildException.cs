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
}
