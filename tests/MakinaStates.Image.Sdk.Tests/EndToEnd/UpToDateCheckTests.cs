using System.Text.Json;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The up-to-date check is never wrong: the inputs key is computed when the build runs, from every setting as it is then
/// (a target before MsResolveSettings included), and it describes the tree that is in the image. And the candidate item
/// is the same whether the build ran or was up to date.
/// </summary>
[TestClass]
public sealed class UpToDateCheckTests
{
    private static string UniqueImage(string name) => $"makinastates/test-key-{name}-{Guid.NewGuid():N}"[..40];

    private static bool IsUpToDate(DotnetBuild build) => build.Output.Contains("is up to date (inputs key", StringComparison.Ordinal);

    [TestMethod]
    public async Task A_target_before_MsResolveSettings_that_changes_a_property_or_an_item_rebuilds()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("hook");
        // As a user writes it: MsCommand and an MsLabel from environment variables, in a Directory.Build.targets.
        using var project = new ImageProject(image);
        project.Write("Directory.Build.targets", """
            <Project>
              <Target Name="ChooseFromEnvironment" BeforeTargets="MsResolveSettings">
                <PropertyGroup><MsCommand>/usr/bin/sleep $(HOOK_COMMAND)</MsCommand></PropertyGroup>
                <ItemGroup><MsLabel Include="hook" Value="$(HOOK_LABEL)" /></ItemGroup>
              </Target>
            </Project>
            """);
        async Task<DotnetBuild> BuildWith(string command, string label)
        {
            var build = await DotnetBuild.RunAsync(project.ProjectFile, [], new Dictionary<string, string?> { ["HOOK_COMMAND"] = command, ["HOOK_LABEL"] = label });
            Assert.IsTrue(build.Succeeded, build.Output);
            return build;
        }
        async Task AssertCandidate(string command, string label)
        {
            var inspected = await docker.Images.InspectImageAsync($"{image}:candidate");
            CollectionAssert.AreEqual(new[] { "/usr/bin/sleep", command }, inspected.Config!.Cmd!.ToArray());
            Assert.AreEqual(label, inspected.Config!.Labels!["hook"]);
        }
        try
        {
            await BuildWith("111", "111");
            await AssertCandidate("111", "111");

            var property = await BuildWith("222", "111");
            Assert.IsFalse(IsUpToDate(property), "a property set by the hook changed, and the build was called up to date:\n" + property.Output);
            await AssertCandidate("222", "111");

            var item = await BuildWith("222", "222");
            Assert.IsFalse(IsUpToDate(item), "an item added by the hook changed, and the build was called up to date:\n" + item.Output);
            await AssertCandidate("222", "222");

            var same = await BuildWith("222", "222");
            Assert.IsTrue(IsUpToDate(same), "the same values rebuilt:\n" + same.Output);
            await AssertCandidate("222", "222");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    private static readonly string[] CandidateMetadata = ["ImageId", "Repository", "Tag", "Size", "CommitId", "Platform"];

    private static Dictionary<string, string> CandidateFromGetItem(DotnetBuild build)
    {
        var json = build.Output[build.Output.IndexOf('{')..(build.Output.LastIndexOf('}') + 1)];
        using var document = JsonDocument.Parse(json);
        var item = document.RootElement.GetProperty("Items").GetProperty("MsImageCandidate").EnumerateArray().Single();
        return CandidateMetadata.Append("Identity").ToDictionary(n => n, n => item.TryGetProperty(n, out var v) ? v.GetString() ?? "" : "<absent>");
    }

    [TestMethod]
    public async Task The_candidate_item_has_every_metadata_after_a_fresh_and_an_up_to_date_build_and_through_the_MSBuild_task()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("item");
        using var project = new ImageProject(image, "<PropertyGroup><MsCommand>/usr/bin/sleep infinity</MsCommand></PropertyGroup>");
        // A project of the solution that builds the image project and uses what it returns.
        var consumer = project.Write("consumer.proj", """
            <Project>
              <Target Name="Build">
                <MSBuild Projects="image.proj" Targets="Build">
                  <Output TaskParameter="TargetOutputs" ItemName="BuiltImage" />
                </MSBuild>
                <Message Importance="high" Text="CONSUMED %(BuiltImage.Identity)|%(BuiltImage.ImageId)|%(BuiltImage.Repository)|%(BuiltImage.Tag)|%(BuiltImage.Size)|%(BuiltImage.CommitId)|%(BuiltImage.Platform)" />
              </Target>
            </Project>
            """);
        DotnetBuild? upToDateBuild = null;
        try
        {
            // -getItem prints the items after the build when a target is named (MSBuild's rule; without one it only
            // evaluates), and nothing else: the engine's events say whether the second build started a container.
            var fresh = await project.BuildAsync("-t:Build", "-getItem:MsImageCandidate");
            Assert.IsTrue(fresh.Succeeded, fresh.Output);
            var freshId = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");
            Assert.IsNotNull(freshId, fresh.Output);
            await using (var events = EngineEvents.Record(docker, $"{BuildLabels.Image}={image}"))
            {
                var upToDate = await project.BuildAsync("-t:Build", "-getItem:MsImageCandidate");
                Assert.IsTrue(upToDate.Succeeded, upToDate.Output);
                var created = (await events.StopAsync()).Where(e => e.Action == "create").ToList();
                Assert.AreEqual(0, created.Count, "the second build was not up to date");
                Assert.AreEqual(freshId, await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));
                upToDateBuild = upToDate;
            }

            var expected = new Dictionary<string, string>
            {
                ["Identity"] = $"{image}:candidate",
                ["ImageId"] = (await TestDocker.ImageIdAsync(docker, $"{image}:candidate"))!,
                ["Repository"] = image,
                ["Tag"] = "candidate",
                ["Size"] = (await docker.Images.InspectImageAsync($"{image}:candidate")).Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["CommitId"] = "",
                ["Platform"] = $"linux/{System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant().Replace("x64", "amd64")}",
            };
            CollectionAssert.AreEquivalent(expected, CandidateFromGetItem(fresh), "after a fresh build");
            CollectionAssert.AreEquivalent(expected, CandidateFromGetItem(upToDateBuild), "after an up-to-date build");

            var consumed = await DotnetBuild.RunAsync(consumer);
            Assert.IsTrue(consumed.Succeeded, consumed.Output);
            StringAssert.Contains(consumed.Output, "CONSUMED " + string.Join('|', new[] { "Identity" }.Concat(CandidateMetadata).Select(n => expected[n])));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task A_file_edited_after_Stage0_read_it_is_in_the_image_under_a_key_that_describes_it()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = UniqueImage("edit");
        // The edit happens between Stage0 (which fingerprints the tree) and Stage2 (which sends it): a hook after
        // Stage0, as an editor saving a file while Stage1 runs would.
        using var project = new ImageProject(image, """
            <PropertyGroup><MsCommand>/usr/bin/sleep infinity</MsCommand></PropertyGroup>
            <Target Name="EditWhileBuilding" AfterTargets="MsStage0" Condition="'$(EDIT_TO)' != ''">
              <WriteLinesToFile File="injected_volumes/srv/page.txt" Lines="$(EDIT_TO)" Overwrite="true" />
            </Target>
            """);
        var page = project.Write("injected_volumes/srv/page.txt", "one\n");
        try
        {
            var edited = await DotnetBuild.RunAsync(project.ProjectFile, [], new Dictionary<string, string?> { ["EDIT_TO"] = "two" });
            Assert.IsTrue(edited.Succeeded, edited.Output);
            StringAssert.Contains(edited.Output, "warning MSI2008");
            Assert.AreEqual("two\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/page.txt"));

            // The tree as it now is, "two", is the tree in the image: up to date.
            var again = await project.BuildAsync();
            Assert.IsTrue(again.Succeeded, again.Output);
            Assert.IsTrue(IsUpToDate(again), "the candidate's key does not describe the tree it holds:\n" + again.Output);

            // Back to what Stage0 read the first time: the image does not hold that, so it is rebuilt.
            File.WriteAllText(page, "one\n");
            var reverted = await project.BuildAsync();
            Assert.IsTrue(reverted.Succeeded, reverted.Output);
            Assert.IsFalse(IsUpToDate(reverted), "a stale image was returned as current:\n" + reverted.Output);
            Assert.AreEqual("one\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/page.txt"));
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
