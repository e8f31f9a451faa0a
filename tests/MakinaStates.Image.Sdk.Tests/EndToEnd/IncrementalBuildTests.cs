using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>Fast when nothing changed; only stages 2 and 3 when an injected file changed.</summary>
[TestClass]
public sealed partial class IncrementalBuildTests
{
    [GeneratedRegex(@"Image build summary: (?<text>.*)")]
    private static partial Regex Summary();

    [GeneratedRegex(@"Stage0 (?<seconds>[0-9.]+) s")]
    private static partial Regex Stage0Time();

    private static string SummaryOf(DotnetBuild build)
    {
        var match = Summary().Match(build.Output);
        Assert.IsTrue(match.Success, $"no summary:\n{build.Output}");
        return match.Groups["text"].Value.Trim();
    }

    [TestMethod]
    public async Task Unchanged_build_is_up_to_date_a_changed_file_reruns_stages_2_and_3_and_force_rebuilds()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-incremental-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        var page = project.Write("injected_volumes/srv/page.txt", "one\n");
        try
        {
            var first = await project.BuildAsync();
            Assert.IsTrue(first.Succeeded, first.Output);
            StringAssert.Matches(SummaryOf(first), new Regex(@"^Stage0 [0-9.]+ s, Stage1 [0-9.]+ s, Stage2 [0-9.]+ s, Stage3 [0-9.]+ s; .*:candidate [0-9.]+ MB\.$"));
            var firstId = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");

            var noop = await project.BuildAsync();
            Assert.IsTrue(noop.Succeeded, noop.Output);
            StringAssert.StartsWith(SummaryOf(noop), "up to date");
            Assert.IsFalse(noop.Output.Contains("MsStage2:", StringComparison.Ordinal), "stage 2 ran on a no-op build");
            StringAssert.Contains(noop.Output, $"Check image tag: {image}:candidate");
            Assert.AreEqual(firstId, await TestDocker.ImageIdAsync(docker, $"{image}:candidate"));

            // A touch alone changes nothing; new content does, and only stages 2 and 3 run.
            File.SetLastWriteTimeUtc(page, DateTime.UtcNow.AddMinutes(-5));
            StringAssert.StartsWith(SummaryOf(await project.BuildAsync()), "up to date");
            File.WriteAllText(page, "two\n");
            var stage1 = await TestDocker.ImageIdAsync(docker, $"{image}-stage1:latest");
            var changed = await project.BuildAsync();
            Assert.IsTrue(changed.Succeeded, changed.Output);
            Assert.AreEqual(stage1, await TestDocker.ImageIdAsync(docker, $"{image}-stage1:latest"), "the stage1 image was not reused");
            StringAssert.Contains(SummaryOf(changed), "(reused)");
            Assert.AreEqual("two\n", await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/page.txt"));

            var beforeForced = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");
            await using var events = EngineEvents.Record(docker, $"{BuildLabels.Image}={image}");
            var forced = await project.BuildAsync("-p:MsForceRebuild=true");
            var recorded = await events.StopAsync();
            Assert.IsTrue(forced.Succeeded, forced.Output);
            var created = recorded.Where(e => e.Action == "create" && e.Actor.Attributes[BuildLabels.BuildId] == forced.BuildId).Select(e => e.Actor.Attributes[BuildLabels.Stage]);
            CollectionAssert.Contains(created.ToList(), "stage2", "MsForceRebuild started no build container");
            // It ran the stages again and committed: the same inputs give the same image (reproducible by default).
            CollectionAssert.Contains(recorded.Where(e => e.Action == "commit").Select(e => e.Actor.Attributes.TryGetValue(BuildLabels.BuildId, out var id) ? id : null).ToList(),
                forced.BuildId, "MsForceRebuild committed no candidate");
            Assert.AreEqual(beforeForced, await TestDocker.ImageIdAsync(docker, $"{image}:candidate"), "the forced rebuild of the same inputs gave another image");
            Assert.IsFalse(SummaryOf(forced).StartsWith("up to date", StringComparison.Ordinal), "MsForceRebuild did not rebuild");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task No_op_check_of_20000_files_takes_well_under_a_second()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-20k-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        for (var d = 0; d < 100; d++)
        {
            var dir = Directory.CreateDirectory(Path.Combine(project.Directory, "injected_volumes", "srv", "many", $"d{d:000}")).FullName;
            for (var f = 0; f < 200; f++)
            {
                File.WriteAllText(Path.Combine(dir, $"f{f:000}.txt"), $"file {d}/{f}\n");
            }
        }
        try
        {
            var first = await project.BuildAsync();
            Assert.IsTrue(first.Succeeded, first.Output);
            var noop = await project.BuildAsync();
            Assert.IsTrue(noop.Succeeded, noop.Output);
            var summary = SummaryOf(noop);
            StringAssert.StartsWith(summary, "up to date");
            var seconds = double.Parse(Stage0Time().Match(summary).Groups["seconds"].Value, System.Globalization.CultureInfo.InvariantCulture);
            // The check itself: walking the tree, then its content fingerprint from the hash cache (both logged by
            // Stage0). Stage0 as a whole also loads the tasks and asks the engine; it is reported, not asserted (it
            // varies with the machine's load).
            var walk = int.Parse(Regex.Match(noop.Output, @"Injected tree: 20[0-9]{3} entries, checked in (\d+) ms").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            var fingerprint = int.Parse(Regex.Match(noop.Output, @"Injected tree fingerprint in (\d+) ms").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Console.WriteLine($"no-op check over 20,000 files: walk {walk} ms + fingerprint {fingerprint} ms; Stage0 {seconds} s; whole dotnet build {noop.Duration.TotalSeconds:0.00} s");
            Assert.IsTrue(walk + fingerprint < 1000, $"the no-op check took {walk + fingerprint} ms");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
