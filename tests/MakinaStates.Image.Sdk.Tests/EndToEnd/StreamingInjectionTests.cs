using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>Injection streams: a 2 GiB tree adds less than 100 MB to the build's peak memory.</summary>
[TestClass]
public sealed class StreamingInjectionTests
{
    [TestMethod]
    public async Task Two_GiB_tree_adds_less_than_100_MB_to_peak_memory()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-streaming-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        // stage3 checks the files arrived whole, then drops them so the commit stays small.
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -euo pipefail
            test -d /srv/big || exit 0
            for f in /srv/big/*; do test "$(stat -c %s "$f")" = 1073741824; done
            echo "big files: $(ls /srv/big | wc -l)"
            rm -rf /srv/big
            """, executable: true);
        try
        {
            var small = await project.BuildAsync();
            Assert.IsTrue(small.Succeeded, small.Output);

            Directory.CreateDirectory(Path.Combine(project.Directory, "injected_volumes", "srv", "big"));
            foreach (var name in new[] { "one", "two" })
            {
                // Sparse on the host (no disk used); the archive carries every byte.
                using var file = File.Create(Path.Combine(project.Directory, "injected_volumes", "srv", "big", name));
                file.SetLength(1L << 30);
            }
            var big = await project.BuildAsync();
            Assert.IsTrue(big.Succeeded, big.Output);
            StringAssert.Contains(big.Output, "big files: 2");

            var growth = big.PeakMemoryBytes - small.PeakMemoryBytes;
            Console.WriteLine($"peak RSS: {small.PeakMemoryBytes >> 20} MiB without, {big.PeakMemoryBytes >> 20} MiB with 2 GiB injected");
            Assert.IsTrue(small.PeakMemoryBytes > 0, "peak memory was not measured");
            Assert.IsTrue(growth < 100L << 20, $"peak memory grew by {growth >> 20} MiB");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }
}
