using System.Diagnostics;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// The real CycloneDX clients .ci/setup installs with npm in tests/cyclonedx: the CycloneDX library's strict JSON
/// validator (validate.js) and cdxgen. Missing, a test fails in CI and is inconclusive elsewhere.
/// </summary>
public static class CycloneDxClients
{
    private static string Folder => Path.Combine(Repository.Root, "tests", "cyclonedx");

    /// <summary>Null when the file is valid CycloneDX 1.6 JSON, else the validator's errors.</summary>
    public static string? ValidationErrors(string sbomPath)
    {
        Require(Path.Combine(Folder, "node_modules", "@cyclonedx", "cyclonedx-library"));
        var (exitCode, output) = Run("node", Path.Combine(Folder, "validate.js"), sbomPath, "1.6");
        Assert.IsTrue(exitCode is 0 or 1, $"the validator itself failed ({exitCode}): {output}");
        return exitCode == 0 && output.Trim() == "valid" ? null : output;
    }

    /// <summary>cdxgen's CycloneDX JSON of a `docker save` archive (cdxgen -t docker, offline).</summary>
    public static string CdxgenOfDockerArchive(string archivePath, string outputPath)
    {
        var cdxgen = Path.Combine(Folder, "node_modules", ".bin", "cdxgen");
        Require(cdxgen);
        var (exitCode, output) = Run(cdxgen, "-t", "docker", "-o", outputPath, "--no-install-deps", archivePath);
        Assert.AreEqual(0, exitCode, output);
        Assert.IsTrue(File.Exists(outputPath), output);
        return File.ReadAllText(outputPath);
    }

    private static void Require(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            TestDocker.MissingPrerequisite($"{path} is missing: run .ci/setup (it installs the CycloneDX clients with npm in tests/cyclonedx)");
        }
    }

    private static (int ExitCode, string Output) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Folder };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        // cdxgen: no network lookups, no telemetry; its temporary files in the test's own TMPDIR.
        start.Environment["CDXGEN_NO_BANNER"] = "true";
        start.Environment["FETCH_LICENSE"] = "false";
        start.Environment["CDXGEN_TELEMETRY"] = "false";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output.Result + error);
    }
}
