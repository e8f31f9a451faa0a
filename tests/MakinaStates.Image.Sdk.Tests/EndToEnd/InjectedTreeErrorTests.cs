using System.Diagnostics;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>A bad injected tree stops the build in Stage0, naming the file or item, before any container exists.</summary>
[TestClass]
public sealed class InjectedTreeErrorTests
{
    [TestMethod]
    public async Task Missing_injected_volume_is_MSI0006_naming_it()
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject("makinastates/test-missing-volume", """
            <ItemGroup><InjectedVolume Include="does-not-exist/" TargetPath="/srv/x/" /></ItemGroup>
            """);
        var build = await project.BuildAsync();
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0006");
        StringAssert.Contains(build.Output, "does-not-exist");
        Assert.IsNull(build.BuildId, "the build got past validation");
    }

    [TestMethod]
    [DataRow("srv/relative/")]
    [DataRow("/srv/../etc/")]
    public async Task Bad_target_path_is_MSI0007_naming_it(string targetPath)
    {
        Repository.RequirePackedSdk();
        using var project = new ImageProject("makinastates/test-bad-target", $"""
            <ItemGroup><InjectedVolume Include="site/" TargetPath="{targetPath}" /></ItemGroup>
            """);
        project.Write("site/index.html", "x");
        var build = await project.BuildAsync();
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0007");
        StringAssert.Contains(build.Output, targetPath);
    }

    /// <summary>
    /// Root reads everything, so the build runs as 'nobody' (as a developer account would) over a root-only file.
    /// </summary>
    [TestMethod]
    public async Task Unreadable_file_fails_the_build_naming_it()
    {
        Repository.RequirePackedSdk();
        if (Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("needs root to make a file another account cannot read and to build as 'nobody'");
        }
        using var project = new ImageProject("makinastates/test-unreadable");
        var secret = project.Write("injected_volumes/etc/secret.key", "root only\n");
        var home = Directory.CreateDirectory(Path.Combine(project.Directory, "home")).FullName;
        HostProcess.Run("chown", "-R", "65534:65534", project.Directory);
        HostProcess.Run("chown", "0:0", secret);
        HostProcess.Run("chmod", "600", secret);

        var start = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = project.Directory };
        foreach (var argument in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "--", "dotnet", "build", project.ProjectFile, "-nr:false", "-tl:off", "-v:m",
                     $"-p:MsDataDir={Path.Combine(project.Directory, "data")}" })
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["HOME"] = home;
        start.Environment["DOTNET_CLI_HOME"] = home;
        start.Environment["NUGET_PACKAGES"] = Path.Combine(home, "packages");
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        foreach (var name in new[] { "MSBuildExtensionsPath", "MSBUILD_EXE_PATH", "MSBuildSDKsPath" }) start.Environment.Remove(name);
        using var process = Process.Start(start)!;
        var outputTask = process.StandardOutput.ReadToEndAsync();
        var errorTask = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var output = await outputTask + await errorTask;

        Assert.AreNotEqual(0, process.ExitCode, output);
        StringAssert.Contains(output, "error MSI2002");
        StringAssert.Contains(output, secret);
        Assert.AreEqual("root only\n", File.ReadAllText(secret), "the file was changed");
    }

}
