using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>The connection to the Docker engine: which endpoint, and proof that it answers.</summary>
public sealed class DockerEngine : IDisposable
{
    public static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(8);
    private const string DefaultEndpoint = "unix:///var/run/docker.sock";

    private DockerEngine(DockerClient client, Uri endpoint)
    {
        Client = client;
        Endpoint = endpoint;
    }

    public DockerClient Client { get; }

    public Uri Endpoint { get; }

    /// <summary>A unix-socket engine runs on this host: host paths can be bind-mounted.</summary>
    public bool SharesHostFileSystem => Endpoint.Scheme == "unix";

    /// <summary>MsDockerHost wins over DOCKER_HOST, which wins over the local socket (docker's own order).</summary>
    public static Uri ResolveEndpoint(string? msDockerHost, string? dockerHostEnvironment)
    {
        var (value, origin) = !string.IsNullOrWhiteSpace(msDockerHost) ? (msDockerHost.Trim(), "MsDockerHost")
            : !string.IsNullOrWhiteSpace(dockerHostEnvironment) ? (dockerHostEnvironment.Trim(), "DOCKER_HOST")
            : (DefaultEndpoint, "the default");
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("unix" or "tcp" or "http" or "https")
            || (uri.Scheme != "unix" && (string.IsNullOrEmpty(uri.Host) || uri.Port <= 0)))
        {
            throw new ImageBuildException(MsiCodes.DockerHostInvalid,
                MsiMessages.Format("DockerHostInvalid", value, origin));
        }
        return uri;
    }

    public static async Task<DockerEngine> ConnectAsync(string? msDockerHost, CancellationToken cancellationToken)
    {
        var endpoint = ResolveEndpoint(msDockerHost, Environment.GetEnvironmentVariable("DOCKER_HOST"));
        var client = new DockerClientBuilder().WithEndpoint(endpoint).Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(PingTimeout);
        try
        {
            await client.System.PingAsync(timeout.Token).ConfigureAwait(false);
            return new DockerEngine(client, endpoint);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            client.Dispose();
            var reason = e is OperationCanceledException ? $"no answer within {PingTimeout.TotalSeconds:0} seconds" : Innermost(e).Message;
            throw new ImageBuildException(MsiCodes.EngineUnreachable,
                MsiMessages.Format("EngineUnreachable", endpoint, reason));
        }
    }

    public async Task<ImageInspectResponse?> TryInspectImageAsync(string reference, CancellationToken cancellationToken)
    {
        try
        {
            return await Client.Images.InspectImageAsync(reference, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerImageNotFoundException)
        {
            return null;
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>Removes one tag; the image stays while another tag names it. A tag already gone is fine.</summary>
    public async Task UntagAsync(string reference)
    {
        try
        {
            await Client.Images.DeleteImageAsync(reference, new ImageDeleteParameters { NoPrune = true }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (DockerImageNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }
    }

    /// <summary>Removes a container and its anonymous volumes; a container already gone is fine.</summary>
    public async Task RemoveContainerAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            await Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerContainerNotFoundException)
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
        }
    }

    /// <summary>Removes every container that carries this build's id label.</summary>
    public async Task<int> RemoveBuildContainersAsync(string buildId, CancellationToken cancellationToken)
    {
        var containers = await Client.Containers.ListContainersAsync(new ContainersListParameters
        {
            All = true,
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{BuildLabels.BuildId}={buildId}"] = true },
            },
        }, cancellationToken).ConfigureAwait(false);
        foreach (var container in containers)
        {
            await RemoveContainerAsync(container.ID, cancellationToken).ConfigureAwait(false);
        }
        return containers.Count;
    }

    public void Dispose() => Client.Dispose();

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null)
        {
            e = e.InnerException;
        }
        return e;
    }
}
