using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>A long stage script is never silent at the default verbosity, and its full output stays at normal importance.</summary>
[TestClass]
public sealed class StageScriptProgressTests
{
    [TestMethod]
    public async Task Stage3_that_sleeps_35_s_shows_progress_lines_at_the_default_verbosity()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-heartbeat-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            echo "heartbeat test: sleeping 35 s"
            sleep 35
            echo "heartbeat test: awake"
            """, executable: true);
        try
        {
            // No -v: the console logger at its default (minimal), output redirected as in CI.
            var build = await DotnetBuild.RunAsync(project.ProjectFile, verbosity: null);
            Assert.IsTrue(build.Succeeded, build.Output);
            var beats = Regex.Matches(build.Output, @"Stage3: stage3\.sh still running \((?<seconds>\d+) s\); last output: heartbeat test: sleeping 35 s")
                .Select(m => int.Parse(m.Groups["seconds"].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.IsTrue(beats.Count >= 3, $"{beats.Count} progress line(s) for stage3:\n{build.Output}");
            CollectionAssert.AreEqual(beats.Order().ToList(), beats, "elapsed times go up");
            // The script's own lines are at normal importance: in -v:n and binlogs, not in the default console output.
            Assert.IsFalse(build.Output.Contains("stage3: heartbeat test: awake", StringComparison.Ordinal), build.Output);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
