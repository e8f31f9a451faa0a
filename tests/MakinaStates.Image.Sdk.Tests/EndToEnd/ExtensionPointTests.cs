using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MSBuild's extension points work on image projects as on any project of a solution: a Directory.Build.targets above
/// it, CustomAfterMsImageTargets/CustomBeforeMsImageTargets files, and a hook that changes a setting before Stage0
/// reads the settings (MsResolveSettings, Stage0's first step).
/// </summary>
[TestClass]
public sealed class ExtensionPointTests
{
    private static string UniqueImage(string name) => $"makinastates/test-ext-{name}-{Guid.NewGuid():N}"[..44];

    [TestMethod]
    public async Task A_directory_build_targets_above_the_project_hooks_the_pipeline()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("dbt");
        using var project = new ImageProject(image);
        project.Write("Directory.Build.targets", """
            <Project>
              <Target Name="SolutionWideHook" AfterTargets="MsStage0">
                <Message Importance="high" Text="Directory.Build.targets hook ran after Stage0, description $(MsBuildDescription)" />
              </Target>
            </Project>
            """);
        var build = await project.BuildAsync("-t:MsStage0");
        Assert.IsTrue(build.Succeeded, build.Output);
        Assert.IsNotNull(build.BuildId, build.Output);
        StringAssert.Contains(build.Output, $"Directory.Build.targets hook ran after Stage0, description {Path.Combine(project.Directory, "obj", "msimage", "build.json")}");
    }

    [TestMethod]
    public async Task Custom_before_and_after_files_are_imported()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("custom");
        using var project = new ImageProject(image);
        // Before: it sets a property the defaults respect. After: it adds a target to the pipeline.
        var before = project.Write("before.targets", "<Project><PropertyGroup><MsBootTimeout>77</MsBootTimeout></PropertyGroup></Project>");
        var after = project.Write("after.targets", """
            <Project>
              <Target Name="CustomAfterHook" AfterTargets="MsStage0">
                <Message Importance="high" Text="CustomAfterMsImageTargets hook ran; MsBootTimeout=$(MsBootTimeout)" />
              </Target>
            </Project>
            """);
        var build = await project.BuildAsync("-t:MsStage0", $"-p:CustomBeforeMsImageTargets={before}", $"-p:CustomAfterMsImageTargets={after}");
        Assert.IsTrue(build.Succeeded, build.Output);
        StringAssert.Contains(build.Output, "CustomAfterMsImageTargets hook ran; MsBootTimeout=77");
        var description = MakinaStates.Image.Sdk.Settings.BuildDescription.Load(Path.Combine(project.Directory, "obj", "msimage", "build.json"));
        Assert.AreEqual("77", description.MsBootTimeout, "the stages read the settings from the description");
        Assert.AreEqual(build.BuildId, description.BuildId);
    }

    [TestMethod]
    public async Task A_target_that_changes_a_setting_before_MsResolveSettings_is_read_and_one_after_Stage0_is_not()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("late");
        using var project = new ImageProject(image, """
            <Target Name="ChooseDockerArgs" BeforeTargets="MsResolveSettings">
              <PropertyGroup><MsDockerArgs>--no-such-flag</MsDockerArgs></PropertyGroup>
            </Target>
            """);
        var early = await project.BuildAsync("-t:MsStage0");
        Assert.IsFalse(early.Succeeded, early.Output);
        StringAssert.Contains(early.Output, "error MSI0011");
        StringAssert.Contains(early.Output, "--no-such-flag");

        // The documented change: settings are read when Stage0 runs; a target after it changes nothing for this build.
        File.WriteAllText(project.ProjectFile, File.ReadAllText(project.ProjectFile).Replace("BeforeTargets=\"MsResolveSettings\"", "AfterTargets=\"MsStage0\""));
        var late = await project.BuildAsync("-t:MsStage0");
        Assert.IsTrue(late.Succeeded, late.Output);
        var description = MakinaStates.Image.Sdk.Settings.BuildDescription.Load(Path.Combine(project.Directory, "obj", "msimage", "build.json"));
        Assert.AreEqual("", description.MsDockerArgs);
        await TestDocker.AssertNoStageContainerAsync(docker, image);
    }
}
