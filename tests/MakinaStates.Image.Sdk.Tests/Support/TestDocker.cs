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

    /// <summary>Something a test needs is not on this machine: fails in CI (CI=true), inconclusive elsewhere.</summary>
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

    /// <summary>Starts a container of the image the way a user runs a systemd image, and waits for boot.</summary>
    public static async Task<string> BootAsync(DockerClient client, string image, string name)
    {
        var info = await client.System.GetSystemInfoAsync();
        var parameters = SystemdContainerSpec.Create(image, name, ["/sbin/init"], new Dictionary<string, string> { ["io.makinastates.test"] = "true" }, info.CgroupVersion);
        var created = await client.Containers.CreateContainerAsync(parameters);
        await client.Containers.StartContainerAsync(created.ID, new ContainerStartParameters());
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            var (code, output) = await ExecAsync(client, created.ID, "systemctl is-system-running --wait");
            if (output.Trim() is "running" or "degraded")
            {
                return created.ID;
            }
            await Task.Delay(500);
        }
        return created.ID;
    }

    public static async Task<(long ExitCode, string Output)> ExecAsync(DockerClient client, string containerId, string shellCommand)
    {
        var lines = new List<string>();
        var result = await ContainerExec.RunAsync(client, containerId, ["/bin/bash", "-c", shellCommand], null, lines.Add, CancellationToken.None);
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
    public static async Task<string> RunInImageAsync(DockerClient client, string image, string shellCommand)
    {
        var created = await client.Containers.CreateContainerAsync(new CreateContainerParameters { Image = image, Entrypoint = ["/bin/bash", "-c"], Cmd = [shellCommand] });
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
        foreach (var record in Directory.Exists(dataDirectory) ? Directory.GetFiles(dataDirectory, "*.imported") : [])
        {
            await RemoveImageAsync(client, File.ReadAllText(record).Trim());
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
