using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// What the test run as a whole owns, so that it leaves nothing: a temporary folder that is the TMPDIR of the test host
/// and of everything it starts (every `dotnet build` leaves empty folders in TMPDIR), and the base imports that builds
/// with the default data dir made on the default engine (the data dir is shared by the run's builds, so no single test
/// owns its import). Imports and folders that existed before the run are not touched.
/// </summary>
public static class RunScope
{
    private static string? s_previousTemp;
    private static string? s_temp;
    private static HashSet<string>? s_basesBefore;

    public static async Task StartAsync()
    {
        s_previousTemp = Environment.GetEnvironmentVariable("TMPDIR");
        s_temp = Directory.CreateTempSubdirectory("msrun-").FullName;
        // As /tmp: the rootless Podman tests' user reaches the projects made in it.
        File.SetUnixFileMode(s_temp, (UnixFileMode)0x1FF | UnixFileMode.StickyBit);
        // Path.GetTempPath reads TMPDIR each time, and processes started from now on inherit it.
        Environment.SetEnvironmentVariable("TMPDIR", s_temp);
        s_basesBefore = await BaseImportsAsync();
    }

    public static async Task EndAsync()
    {
        if (s_basesBefore is not null && await BaseImportsAsync() is { } after)
        {
            using var client = new DockerClientBuilder().Build();
            foreach (var tag in after.Except(s_basesBefore))
            {
                try
                {
                    // Not forced: an import a container still uses (another build on a shared engine) stays.
                    await client.Images.DeleteImageAsync(tag, new ImageDeleteParameters());
                }
                catch (DockerApiException e)
                {
                    Console.WriteLine($"the base import {tag} made by this run stays: {e.Message}");
                }
            }
        }
        Environment.SetEnvironmentVariable("TMPDIR", s_previousTemp);
        if (s_temp is not null)
        {
            try
            {
                Directory.Delete(s_temp, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.WriteLine($"the run's temporary folder {s_temp} could not be removed: {e.Message}");
            }
        }
    }

    /// <summary>The base imports on the default engine, or null when no engine answers (then nothing was built on it).</summary>
    private static async Task<HashSet<string>?> BaseImportsAsync()
    {
        try
        {
            using var client = new DockerClientBuilder().Build();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var images = await client.Images.ListImagesAsync(new ImagesListParameters(), timeout.Token);
            var prefix = BaseImageImport.Repository("", "")[..^1]; // makinastates/base-
            return [.. images.SelectMany(i => i.RepoTags ?? []).Where(t => t.StartsWith(prefix, StringComparison.Ordinal))];
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return null;
        }
    }
}
