using System.IO.Compression;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Package;

[TestClass]
public sealed class PackageContentTests
{
    [TestMethod]
    public void Package_holds_the_sdk_files_the_tasks_with_their_dependencies_and_the_stage_scripts()
    {
        Repository.RequirePackedSdk();
        using var package = ZipFile.OpenRead(Repository.Package);
        var files = package.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);

        foreach (var expected in new[]
        {
            "Sdk/Sdk.props", "Sdk/Sdk.targets", "Sdk/Sdk.Settings.targets", "Sdk/Sdk.Platforms.targets", "Sdk/Sdk.Pipeline.targets",
            "tasks/net10.0/MakinaStates.Image.Sdk.Tasks.dll", "tasks/net10.0/MakinaStates.Image.Sdk.Tasks.deps.json",
            "tasks/net10.0/Docker.DotNet.dll", "tasks/net10.0/Docker.DotNet.Unix.dll",
            "tasks/net10.0/runtimes/linux-x64/lib/netstandard2.0/Mono.Posix.NETStandard.dll",
            "tasks/net10.0/runtimes/linux-x64/native/libMonoPosixHelper.so",
            "stage-scripts/stage0.sh", "stage-scripts/stage1.sh", "stage-scripts/stage2.sh", "stage-scripts/stage3.sh",
            "stage-scripts/Dockerfile.stage0", "stage-scripts/makinastates-acl-restore.service",
            "stage-scripts/snapshot.sh", "stage-scripts/save-acls.sh",
        })
        {
            Assert.IsTrue(files.Contains(expected), $"{expected} missing from the package");
        }

        // MSBuild's own assemblies come from the MSBuild that loads the tasks; shipping them breaks loading.
        Assert.IsFalse(files.Any(f => f.Contains("Microsoft.Build.", StringComparison.Ordinal) && f.EndsWith(".dll", StringComparison.Ordinal)),
            string.Join(", ", files.Where(f => f.Contains("Microsoft.Build.", StringComparison.Ordinal))));
        Assert.IsFalse(files.Any(f => f.StartsWith("lib/", StringComparison.Ordinal)), "an SDK package has no lib/");

        var nuspec = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        using var reader = new StreamReader(nuspec.Open());
        var text = reader.ReadToEnd();
        StringAssert.Contains(text, "<packageType name=\"MSBuildSdk\" />");
        Assert.IsFalse(text.Contains("<dependency ", StringComparison.Ordinal), "the SDK carries its dependencies; it must not ask NuGet for them");
    }

    /// <summary>
    /// One task folder (the .NET MSBuild); on Visual Studio's .NET Framework MSBuild the targets stop with a clear
    /// error before any task is loaded.
    /// </summary>
    [TestMethod]
    public void Tasks_are_for_the_dotnet_msbuild_and_other_runtimes_get_a_clear_error()
    {
        Repository.RequirePackedSdk();
        using var package = ZipFile.OpenRead(Repository.Package);
        var taskFolders = package.Entries.Where(e => e.FullName.StartsWith("tasks/", StringComparison.Ordinal))
            .Select(e => e.FullName.Split('/')[1]).Distinct().ToList();
        CollectionAssert.AreEqual(new[] { "net10.0" }, taskFolders);
        using var reader = new StreamReader(package.GetEntry("Sdk/Sdk.Pipeline.targets")!.Open());
        var targets = System.Xml.Linq.XDocument.Parse(reader.ReadToEnd());
        var check = targets.Root!.Elements().Single(e => e.Name.LocalName == "Target" && (string?)e.Attribute("Name") == "_MsCheckMSBuildRuntime");
        var error = check.Elements().Single(e => e.Name.LocalName == "Error");
        Assert.AreEqual("'$(MSBuildRuntimeType)' != 'Core'", (string?)error.Attribute("Condition"));
        Assert.AreEqual("MSI0018", (string?)error.Attribute("Code"));
        var buildImage = targets.Root.Elements().Single(e => e.Name.LocalName == "Target" && (string?)e.Attribute("Name") == "BuildImage");
        StringAssert.StartsWith((string?)buildImage.Attribute("DependsOnTargets"), "_MsCheckMSBuildRuntime;", "the check runs before any task");
    }

    [TestMethod]
    public void Packed_sdk_files_are_the_repository_ones()
    {
        Repository.RequirePackedSdk();
        using var package = ZipFile.OpenRead(Repository.Package);
        foreach (var (entry, source) in new[] { ("Sdk/Sdk.targets", "sdk/Sdk.targets"), ("Sdk/Sdk.Pipeline.targets", "sdk/Sdk.Pipeline.targets"), ("stage-scripts/stage1.sh", "stage-scripts/stage1.sh") })
        {
            using var reader = new StreamReader(package.GetEntry(entry)!.Open());
            Assert.AreEqual(File.ReadAllText(Path.Combine(Repository.Root, source)), reader.ReadToEnd(), $"{entry} is stale: pack again");
        }
    }
}
