using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;
using Mono.Unix.Native;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>Builds run in parallel in CI and IDEs: a shared base is made once, one image is built by one build at a time.</summary>
[TestClass]
public sealed class ConcurrencyTests
{
    [TestMethod]
    public async Task Parallel_solution_build_of_three_images_makes_the_shared_base_once()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        using var root = new ImageProject("makinastates/unused");
        var data = Path.Combine(root.Directory, "data");
        var images = Enumerable.Range(1, 3).Select(i => $"makinastates/test-parallel{i}-{Guid.NewGuid():N}"[..40]).ToArray();
        for (var i = 0; i < 3; i++)
        {
            root.Write($"image{i}/image{i}.msbuildproj", $"""
                <Project Sdk="MakinaStates.Image.Sdk/{Repository.SdkVersion}">
                  <PropertyGroup><MsImage>{images[i]}</MsImage></PropertyGroup>
                </Project>
                """);
            root.Write($"image{i}/injected_volumes/srv/which", $"image{i}\n");
        }
        HostProcess.RunIn(root.Directory, "dotnet", "new", "sln", "-n", "images", "--format", "sln");
        HostProcess.RunIn(root.Directory, "dotnet", "sln", "images.sln", "add", "image0/image0.msbuildproj", "image1/image1.msbuildproj", "image2/image2.msbuildproj");
        // Each time stage0.sh finishes, its tarball appears under its final name (a rename into place): counted as it
        // happens, with the inode it had.
        Directory.CreateDirectory(data);
        var tarball = Path.Combine(data, "baseimage-debian-bookworm.tar.xz");
        var appearances = new List<ulong>();
        using var watcher = new FileSystemWatcher(data) { NotifyFilter = NotifyFilters.FileName };
        void Appeared(string path)
        {
            if (path == tarball && Syscall.stat(path, out var stat) == 0)
            {
                lock (appearances) appearances.Add(stat.st_ino);
            }
        }
        watcher.Created += (_, e) => Appeared(e.FullPath);
        watcher.Renamed += (_, e) => Appeared(e.FullPath);
        watcher.EnableRaisingEvents = true;
        try
        {
            var build = await DotnetBuild.RunAsync(Path.Combine(root.Directory, "images.sln"), ["-m", $"-p:MsDataDir={data}"]);
            Assert.IsTrue(build.Succeeded, build.Output);
            Assert.AreEqual(0, Syscall.stat(tarball, out var made));
            lock (appearances)
            {
                CollectionAssert.AreEqual(new[] { made.st_ino }, appearances, $"the shared base tarball must be made once, and be the one left (it appeared {appearances.Count} times)");
            }
            // The engine agrees: the three stage1 images start from one imported base (its single layer comes first).
            var baseLayers = new HashSet<string>();
            foreach (var image in images)
            {
                baseLayers.Add((await docker.Images.InspectImageAsync($"{image}-stage1:latest")).RootFS!.Layers![0]);
            }
            Assert.AreEqual(1, baseLayers.Count, $"the stage1 images start from different bases: {string.Join(", ", baseLayers)}");
            Assert.AreEqual(1, Regex.Matches(build.Output, "creating the base tarball").Count, "the shared base must be made once");
            // debootstrap takes longer than 10 s: the build says it is still working at least every 10 s.
            StringAssert.Contains(build.Output, "stage0.sh still running");
            for (var i = 0; i < 3; i++)
            {
                Assert.AreEqual($"image{i}\n", await TestDocker.ReadFileFromImageAsync(docker, $"{images[i]}:candidate", "/srv/which"));
            }
        }
        finally
        {
            foreach (var image in images)
            {
                await TestDocker.RemoveProjectImagesAsync(docker, image);
            }
            await TestDocker.RemoveBaseImportsOfAsync(docker, data);
        }
    }

    [TestMethod]
    public async Task Two_builds_of_one_image_at_once_take_turns()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-same-image-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        // stage3.sh holds its build in Stage3 until the test writes to its FIFO: the first build is surely inside its
        // turn while the second one starts.
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -e
            mkfifo /run/makinastates-test-go
            echo "stage3 waits in $MS_STAGE2_NAME"
            read -r _ < /run/makinastates-test-go
            echo "$MS_STAGE2_NAME" > /srv/built-by
            """, executable: true);
        try
        {
            await using var events = EngineEvents.Record(docker, $"{BuildLabels.Image}={image}");
            await using var first = DotnetBuild.Running.Start(project.ProjectFile);
            var firstContainer = await WaitInStage3Async(first);
            // Forced: once the first build is done, the second would find its candidate up to date and start nothing.
            await using var second = DotnetBuild.Running.Start(project.ProjectFile, ["-p:MsForceRebuild=true"]);
            // It waits for the lock or, if it does not wait, reaches its own stage3.sh while the first is still in its.
            await second.WaitForOutputAsync(TimeSpan.FromMinutes(2), "another build holds the lock for image", "stage3 waits in ");
            await ReleaseStage3Async(docker, firstContainer);
            var firstResult = await first.CompleteAsync(TimeSpan.FromMinutes(5));
            Assert.IsTrue(firstResult.Succeeded, firstResult.Output);
            var secondContainer = await WaitInStage3Async(second);
            await ReleaseStage3Async(docker, secondContainer);
            var secondResult = await second.CompleteAsync(TimeSpan.FromMinutes(5));
            Assert.IsTrue(secondResult.Succeeded, secondResult.Output);

            // The engine's record: every container of the second build was created after the first build's were removed.
            var recorded = await events.StopAsync();
            long Time(string buildId, string action, Func<IEnumerable<long>, long> pick) =>
                pick(recorded.Where(e => e.Action == action && e.Actor.Attributes[BuildLabels.BuildId] == buildId).Select(e => e.TimeNano ?? 0));
            var firstEnded = Time(firstResult.BuildId!, "destroy", t => t.Max());
            var secondStarted = Time(secondResult.BuildId!, "create", t => t.Min());
            static string At(long nanoseconds) => DateTimeOffset.FromUnixTimeMilliseconds(nanoseconds / 1_000_000).ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture);
            Assert.IsTrue(firstEnded < secondStarted,
                $"the builds overlapped on the engine: the second created a container at {At(secondStarted)}, the first removed its last at {At(firstEnded)}");
            Assert.AreEqual(secondContainer, (await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", "/srv/built-by"))?.Trim(),
                "the candidate is not the last build's whole work");
            StringAssert.Contains(secondResult.Output, "another build holds the lock for image", "the second build did not wait for the first");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    /// <summary>Waits until the build's stage3.sh waits, and returns its stage container's name.</summary>
    private static async Task<string> WaitInStage3Async(DotnetBuild.Running build)
    {
        await build.WaitForOutputAsync("stage3 waits in ", TimeSpan.FromMinutes(5));
        return Regex.Match(build.Output, @"stage3 waits in (\S+)").Groups[1].Value;
    }

    private static async Task ReleaseStage3Async(Docker.DotNet.DockerClient docker, string container)
    {
        var (code, output) = await TestDocker.ExecAsync(docker, container, "echo go > /run/makinastates-test-go");
        Assert.AreEqual(0L, code, output);
    }
}
