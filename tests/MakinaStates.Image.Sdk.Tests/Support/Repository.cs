namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>Paths of the repository the tests run from.</summary>
public static class Repository
{
    public static string Root { get; } = FindRoot();

    public static string Feed => Path.Combine(Root, "artifacts", "feed");

    public static string SdkVersion => "1.0.0";

    public static string Package => Path.Combine(Feed, $"MakinaStates.Image.Sdk.{SdkVersion}.nupkg");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "MakinaStates.Sdk.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("MakinaStates.Sdk.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The packed SDK is what users get; end-to-end tests must run against it.</summary>
    public static void RequirePackedSdk()
    {
        if (!File.Exists(Package))
        {
            Assert.Fail($"{Package} is missing: run 'bash .ci/setup' (or 'dotnet pack src/MakinaStates.Image.Sdk') first.");
        }
    }
}
