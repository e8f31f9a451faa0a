namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// The msimage templates, installed from the packed template package into a hive of the test's own (and a
/// DOTNET_CLI_HOME of its own): nothing is installed for the machine's user, and disposing removes all of it.
/// </summary>
public sealed class TemplateHive : IDisposable
{
    private readonly string _root;

    private TemplateHive(string root) => _root = root;

    public static async Task<TemplateHive> InstallAsync()
    {
        RequirePackedTemplates();
        var hive = new TemplateHive(Directory.CreateTempSubdirectory("msimage-template-hive-").FullName);
        var install = await hive.Run(hive._root, ["install", Package]);
        if (!install.Succeeded)
        {
            hive.Dispose();
            Assert.Fail($"dotnet new install {Package}: {install.Output}");
        }
        return hive;
    }

    public static string Package => Path.Combine(Repository.Feed, $"MakinaStates.Image.Templates.{Repository.SdkVersion}.nupkg");

    /// <summary>The template package is what users install; the template tests run against it.</summary>
    public static void RequirePackedTemplates()
    {
        if (!File.Exists(Package))
        {
            Assert.Fail($"{Package} is missing: run 'bash .ci/setup' (or 'dotnet pack templates/MakinaStates.Image.Templates') first.");
        }
    }

    /// <summary>`dotnet new msimage <paramref name="arguments"/>` in <paramref name="directory"/>.</summary>
    public Task<DotnetCommand> NewImageProjectAsync(string directory, params string[] arguments) => Run(directory, ["msimage", .. arguments]);

    private Task<DotnetCommand> Run(string directory, string[] arguments) =>
        DotnetCommand.RunAsync(directory, ["new", .. arguments, "--debug:custom-hive", Path.Combine(_root, "hive")],
            new Dictionary<string, string?> { ["DOTNET_CLI_HOME"] = Path.Combine(_root, "home"), ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" });

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
