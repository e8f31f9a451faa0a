using System.Diagnostics.CodeAnalysis;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// The Docker engine for end-to-end tests. Without an engine a test is inconclusive on a developer machine,
/// but fails in CI (CI=true): a test that cannot fail is a defect.
/// </summary>
public static class TestDocker
{
    public static async Task<DockerClient> RequireEngineAsync()
    {
        var client = new DockerClientBuilder().Build();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await client.System.PingAsync(timeout.Token);
            return client;
        }
        catch (Exception e)
        {
            client.Dispose();
            MissingPrerequisite($"No Docker engine answers ({e.Message}); start one with 'bash .ci/setup'.");
            throw;
        }
    }

    /// <summary>
    /// Something a test needs is not on this machine: fails in CI (CI=true), inconclusive elsewhere. Every skip goes
    /// through here, never through Assert.Inconclusive itself.
    /// </summary>
    [DoesNotReturn]
    public static void MissingPrerequisite(string message)
    {
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail(message);
        }
        Assert.Inconclusive(message);
    }

    /// <summary>A loopback port nothing listens on right now (for a test's own daemon, or as an unreachable address).</summary>
    public static int FreeLoopbackPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static async Task<IList<ContainerListResponse>> ContainersWithLabelAsync(DockerClient client, string label)
    {
        return await client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [label] = true } },
        });
    }

    public static async Task<string?> ImageIdAsync(DockerClient client, string reference)
    {
        try
        {
            return (await client.Images.InspectImageAsync(reference)).ID;
        }
        catch (DockerImageNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// The stage containers of an image's builds (whatever their build id), found by the image label: the image name
    /// is always known to the test, while the build id is printed only once Stage0 got far enough. Containers run
    /// from a committed image inherit the image label with an empty build id: they are not stage containers.
    /// </summary>
    public static async Task<IList<ContainerListResponse>> StageContainersAsync(DockerClient client, string image)
    {
        var labelled = await ContainersWithLabelAsync(client, $"{BuildLabels.Image}={image}");
        return [.. labelled.Where(c => c.Labels.TryGetValue(BuildLabels.BuildId, out var id) && id.Length > 0)];
    }

    public static async Task AssertNoStageContainerAsync(DockerClient client, string image)
    {
        var left = await StageContainersAsync(client, image);
        Assert.AreEqual(0, left.Count, $"stage containers of {image} were left behind: {string.Join(", ", left.SelectMany(c => c.Names))}");
    }

    /// <summary>
    /// Starts a container of the image the way a user runs a systemd image and waits for systemd to finish booting;
    /// fails the test (and removes the container) when it does not.
    /// </summary>
    public static async Task<string> BootAsync(DockerClient client, string image, string name)
    {
        // As the build's own stage containers are made on that engine (Docker or Podman, cgroup v1 or v2).
        var identity = await EngineIdentity.ReadAsync(client, null, CancellationToken.None);
        var parameters = SystemdContainerSpec.Create(image, name, ["/sbin/init"], new Dictionary<string, string> { ["io.makinastates.test"] = "true" },
            identity.SystemdCgroupAccess);
        var created = await client.Containers.CreateContainerAsync(parameters);
        var booted = false;
        try
        {
            await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var state = "";
            while (!deadline.IsCancellationRequested)
            {
                var container = await client.Containers.InspectContainerAsync(created.ID);
                if (container.State?.Running != true)
                {
                    Assert.Fail($"{image} stopped ({container.State?.Status}, exit code {container.State?.ExitCode}) before systemd booted:\n{await LogsAsync(client, created.ID)}");
                }
                try
                {
                    // --wait returns once the boot is over; before D-Bus is up it fails at once, hence the loop.
                    state = (await ExecAsync(client, created.ID, "systemctl is-system-running --wait", deadline.Token)).Output.Trim();
                    if (state is "running" or "degraded")
                    {
                        booted = true;
                        return created.ID;
                    }
                    // Over, but not booted: the boot fell into an emergency shell, or PID 1 is not systemd ("offline"
                    // is also what systemctl says in the first moments, before systemd made /run/systemd/system).
                    var init = state == "offline" ? (await ExecAsync(client, created.ID, "cat /proc/1/comm", deadline.Token)).Output.Trim() : "systemd";
                    if (state == "maintenance" || init != "systemd")
                    {
                        Assert.Fail($"systemd did not boot in {image}: '{state}', PID 1 is '{init}'\n{await LogsAsync(client, created.ID)}");
                    }
                    await Task.Delay(500, deadline.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            Assert.Fail($"systemd did not boot in {image} within 120 s (last state '{state}')\n{await LogsAsync(client, created.ID)}");
            return created.ID;
        }
        finally
        {
            if (!booted)
            {
                await RemoveContainerAsync(client, created.ID);
            }
        }
    }

    private static async Task<string> LogsAsync(DockerClient client, string containerId)
    {
        using var logs = await client.Containers.GetContainerLogsAsync(containerId, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true, Tail = "30" }, CancellationToken.None);
        var (stdout, stderr) = await logs.ReadOutputToEndAsync(CancellationToken.None);
        return stdout + stderr;
    }

    public static async Task<(long ExitCode, string Output)> ExecAsync(DockerClient client, string containerId, string shellCommand,
        CancellationToken cancellationToken = default)
    {
        var lines = new List<string>();
        var result = await ContainerExec.RunAsync(client, containerId, ["/bin/bash", "-c", shellCommand], null, lines.Add, cancellationToken);
        return (result.ExitCode, string.Join("\n", lines));
    }

    /// <summary>A file's content as committed in an image, read through the archive API without starting it.</summary>
    public static async Task<string?> ReadFileFromImageAsync(DockerClient client, string image, string path)
    {
        var created = await client.Containers.CreateContainerAsync(new CreateContainerParameters { Image = image, Cmd = ["/bin/true"] });
        try
        {
            var archive = await client.Containers.GetArchiveFromContainerAsync(created.ID, new ContainerPathStatParameters { Path = path }, false);
            await using var stream = archive.Stream!;
            using var reader = new System.Formats.Tar.TarReader(stream);
            var entry = reader.GetNextEntry(copyData: true);
            if (entry?.DataStream is null)
            {
                return entry is null ? null : "";
            }
            using var text = new StreamReader(entry.DataStream);
            return await text.ReadToEndAsync();
        }
        catch (DockerContainerNotFoundException)
        {
            return null;
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
        finally
        {
            await RemoveContainerAsync(client, created.ID);
        }
    }

    /// <summary>Runs a shell command in a plain (not booted) container of the image and returns its output.</summary>
    public static Task<string> RunInImageAsync(DockerClient client, string image, string shellCommand) =>
        RunWithEntrypointAsync(client, image, ["/bin/bash", "-c"], [shellCommand]);

    /// <summary>Runs a plain (not booted) container of the image with its entrypoint replaced; its output.</summary>
    public static async Task<string> RunWithEntrypointAsync(DockerClient client, string image, IList<string> entrypoint, IList<string> arguments)
    {
        var created = await client.Containers.CreateContainerAsync(new CreateContainerParameters { Image = image, Entrypoint = entrypoint, Cmd = arguments });
        try
        {
            await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
            await client.Containers.WaitContainerAsync(created.ID);
            using var logs = await client.Containers.GetContainerLogsAsync(created.ID, new ContainerLogsParameters { ShowStdout = true, ShowStderr = true }, CancellationToken.None);
            var (stdout, stderr) = await logs.ReadOutputToEndAsync(CancellationToken.None);
            return stdout + stderr;
        }
        finally
        {
            await RemoveContainerAsync(client, created.ID);
        }
    }

    public static async Task RemoveContainerAsync(DockerClient client, string id)
    {
        try
        {
            await client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true });
        }
        catch (DockerContainerNotFoundException)
        {
        }
    }

    /// <summary>Removes what a build of an image project leaves on the engine: its candidate and stage1 image.</summary>
    public static async Task RemoveProjectImagesAsync(DockerClient client, string image)
    {
        await RemoveImageAsync(client, $"{image}:candidate");
        await RemoveImageAsync(client, $"{image}-stage1:latest");
    }

    /// <summary>
    /// Removes the base imports a test's own data dir made (recorded beside its tarballs): a build only replaces the
    /// imports of its own data dir, so those of a deleted temporary one would stay.
    /// </summary>
    public static async Task RemoveBaseImportsOfAsync(DockerClient client, string dataDirectory)
    {
        // A finisher still writing a tarball records its import when done.
        BaseFinishers.StopAll(dataDirectory, TimeSpan.FromSeconds(120));
        foreach (var record in Directory.Exists(dataDirectory) ? Directory.GetFiles(dataDirectory, "*.imported") : [])
        {
            await RemoveImageAsync(client, File.ReadAllText(record).Trim());
        }
        // A tarball its finisher wrote after the build ended: the import of its raw tar has the build-private tag still.
        foreach (var origin in Directory.Exists(dataDirectory) ? Directory.GetFiles(dataDirectory, "*.origin") : [])
        {
            if (File.ReadAllText(origin).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries) is [_, var tag])
            {
                foreach (var found in await client.Images.ListImagesAsync(new ImagesListParameters
                    { Filters = new Dictionary<string, IDictionary<string, bool>> { ["reference"] = new Dictionary<string, bool> { [$"makinastates/base-*:{tag}"] = true } } }))
                {
                    await RemoveImageAsync(client, found.ID);
                }
            }
        }
    }

    public static async Task RemoveImageAsync(DockerClient client, string reference)
    {
        try
        {
            await client.Images.DeleteImageAsync(reference, new ImageDeleteParameters { Force = true });
        }
        catch (DockerImageNotFoundException)
        {
        }
    }
}
