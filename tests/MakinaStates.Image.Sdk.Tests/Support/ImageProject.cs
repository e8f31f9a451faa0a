namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>A throw-away image project in a temp folder, resolving the SDK from the repository's feed.</summary>
public sealed class ImageProject : IDisposable
{
    public ImageProject(string image, string? extraProjectContent = null)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("msimage-test-").FullName;
        Image = image;
        WriteNugetConfig(Directory);
        ProjectFile = Path.Combine(Directory, "image.proj");
        File.WriteAllText(ProjectFile, $"""
            <Project Sdk="MakinaStates.Image.Sdk/{Repository.SdkVersion}">
              <PropertyGroup>
                <MsImage>{image}</MsImage>
              </PropertyGroup>
              {extraProjectContent}
            </Project>
            """);
    }

    public string Directory { get; }

    /// <summary>A nuget.config in <paramref name="folder"/> that resolves the SDK from the repository's feed.</summary>
    public static void WriteNugetConfig(string folder) => File.WriteAllText(Path.Combine(folder, "nuget.config"), $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <add key="makinastates-local" value="{Repository.Feed}" />
          </packageSources>
        </configuration>
        """);

    public string Image { get; }

    public string ProjectFile { get; }

    public string Write(string relativePath, string content, bool executable = false)
    {
        var path = Path.Combine(Directory, relativePath);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content.Replace("\r\n", "\n"));
        if (executable)
        {
            File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
        return path;
    }

    public Task<DotnetBuild> BuildAsync(params string[] arguments) => DotnetBuild.RunAsync(ProjectFile, arguments);

    public void Dispose()
    {
        // A cold build's base tarball finisher outlives the build: it ends (or is stopped) before its data dir goes.
        BaseFinishers.StopAll(Directory, TimeSpan.FromSeconds(120));
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
