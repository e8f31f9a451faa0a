using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>The connection to the Docker engine: which endpoint, and proof that it answers.</summary>
public sealed class DockerEngine : IDisposable
{
    /// <summary>
    /// The README promises an engine that does not answer is reported within 10 s of `dotnet build`: MSBuild's start
    /// and Stage0's checks come first (1 to 3 s), so the ping gets 5 s. 8 s left under a second to spare.
    /// </summary>
    public static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(5);

    private DockerEngine(DockerClient client, DockerEndpoint endpoint)
    {
        Client = client;
        Endpoint = endpoint;
        // An ssh:// engine's socket is local, its files are not.
        SharesHostFileSystem = endpoint.Address.Scheme == "unix";
    }

    public DockerClient Client { get; }

    public DockerEndpoint Endpoint { get; }

    /// <summary>
    /// Host paths can be bind-mounted only when the engine runs on this machine: a unix socket. A tcp engine is treated
    /// as remote (even on 127.0.0.1): everything it needs is uploaded.
    /// </summary>
    public bool SharesHostFileSystem { get; private set; }

    /// <summary>MsDockerRemote=true: a unix socket forwarded from another machine (a CI job container given the host's
    /// socket) is treated like a tcp engine: everything is uploaded.</summary>
    public DockerEngine AsRemote()
    {
        SharesHostFileSystem = false;
        return this;
    }

    /// <summary>Resolves the endpoint from the three MSBuild settings and the process's docker environment.</summary>
    public static DockerEndpoint ResolveEndpoint(string? msDockerHost, string? msDockerCertPath, string? msDockerTlsVerify) =>
        DockerEndpoint.Resolve(msDockerHost, msDockerCertPath, msDockerTlsVerify, Environment.GetEnvironmentVariable,
            Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    /// <summary>The engine of the docker environment alone (tools and tests).</summary>
    public static Task<DockerEngine> ConnectAsync(string? msDockerHost, CancellationToken cancellationToken) =>
        ConnectAsync(ResolveEndpoint(msDockerHost, null, null), cancellationToken);

    /// <summary>
    /// Connects to the endpoint, or, when nothing answers at the default socket, to the first of its Podman fallbacks
    /// whose socket exists and answers. The error names the endpoint the user would expect (the default).
    /// </summary>
    public static async Task<DockerEngine> ConnectAsync(DockerEndpoint endpoint, CancellationToken cancellationToken)
    {
        try
        {
            return await ConnectOnceAsync(endpoint, cancellationToken).ConfigureAwait(false);
        }
        catch (ImageBuildException e) when (e.Code == MsiCodes.EngineUnreachable && endpoint.Fallbacks.Count > 0)
        {
            foreach (var fallback in endpoint.Fallbacks.Where(f => f.Ssh is not null || File.Exists(f.Address.LocalPath)))
            {
                try
                {
                    return await ConnectOnceAsync(fallback with { Origin = $"{fallback.Origin}: nothing answered at {endpoint.Display}" }, cancellationToken).ConfigureAwait(false);
                }
                catch (ImageBuildException next) when (next.Code == MsiCodes.EngineUnreachable)
                {
                }
            }
            throw new ImageBuildException(MsiCodes.EngineUnreachable, e.Message.Replace(") did not answer", $"; nor Podman at {string.Join(" or ", endpoint.Fallbacks.Select(f => f.Display))}) did not answer", StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// Connects to exactly this endpoint, with <paramref name="firstCall"/> in place of the ping: a build that needs one
    /// answer from the engine (Stage0's no-op: the candidate) makes one call, with the ping's time limit and errors.
    /// </summary>
    public static Task<DockerEngine> ConnectAsync(DockerEndpoint endpoint, Func<DockerClient, CancellationToken, Task> firstCall, CancellationToken cancellationToken) =>
        ConnectOnceAsync(endpoint, cancellationToken, firstCall);

    private static async Task<DockerEngine> ConnectOnceAsync(DockerEndpoint endpoint, CancellationToken cancellationToken,
        Func<DockerClient, CancellationToken, Task>? firstCall = null)
    {
        // ssh://: the API is reached through the build's tunnel, a local socket.
        var address = endpoint.Ssh is { } target && OperatingSystem.IsLinux()
            ? new Uri("unix://" + (await SshTunnel.ShareAsync(target, endpoint.SshCommand, cancellationToken).ConfigureAwait(false)).SocketPath)
            : ClientAddress(endpoint);
        // The library's own docker-environment lookup is given the resolved endpoint: it must not read DOCKER_HOST or a
        // (possibly stale) docker context of its own after MsDockerHost chose the engine.
        var builder = new DockerClientBuilder(new DockerConfig(new ResolvedCliSettings(address.ToString()))).WithEndpoint(address);
        var credentials = endpoint.Tls is { } tls ? EngineTlsCredentials.Create(tls, endpoint) : null;
        if (credentials is not null)
        {
            builder = builder.WithAuthProvider(credentials);
        }
        var client = builder.Build();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(PingTimeout);
        try
        {
            // WaitAsync: the tcp transport does not honour the token while connecting or in the TLS handshake.
            await (firstCall ?? ((c, t) => c.System.PingAsync(t)))(client, timeout.Token).WaitAsync(PingTimeout, cancellationToken).ConfigureAwait(false);
            return new DockerEngine(client, endpoint);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            client.Dispose();
            if (endpoint.Tls is { } failedTls && Find<System.Security.Authentication.AuthenticationException>(e) is { } handshake)
            {
                throw new ImageBuildException(MsiCodes.EngineTlsFailed,
                    MsiMessages.Format("EngineTlsFailed", endpoint.Describe(), credentials?.Rejection ?? Innermost(handshake).Message, failedTls.CertificateDirectory));
            }
            var reason = e is OperationCanceledException or TimeoutException ? $"no answer within {PingTimeout.TotalSeconds:0} seconds" : Innermost(e).Message;
            throw new ImageBuildException(MsiCodes.EngineUnreachable,
                MsiMessages.Format("EngineUnreachable", endpoint.Describe(), reason));
        }
    }

    /// <summary>Docker.DotNet speaks HTTP to a tcp:// address; with TLS it must be told https.</summary>
    private static Uri ClientAddress(DockerEndpoint endpoint) =>
        endpoint.Tls is not null && endpoint.Address.Scheme is "tcp" or "http"
            ? new UriBuilder(endpoint.Address) { Scheme = "https" }.Uri
            : endpoint.Address;

    private sealed class ResolvedCliSettings(string host) : IDockerCliSettings
    {
        public string DockerConfig => "";
        public string DockerHost => host;
        public string DockerTlsVerify => "";
        public string DockerContext => "";
    }

    private static T? Find<T>(Exception e) where T : Exception
    {
        for (Exception? current = e; current is not null; current = current.InnerException)
        {
            if (current is T found)
            {
                return found;
            }
        }
        return null;
    }

    private EngineIdentity? _identity;

    /// <summary>What the engine is (Docker or Podman, version, cgroups, rootless), asked once per connection.</summary>
    public async Task<EngineIdentity> IdentityAsync(CancellationToken cancellationToken) =>
        _identity ??= await EngineIdentity.ReadAsync(Client, EngineProcess.Of(Endpoint), cancellationToken).ConfigureAwait(false);

    /// <summary>How systemd in a stage container gets its cgroup on this engine (its host's cgroup version, its API).</summary>
    public async Task<SystemdCgroupAccess> SystemdCgroupAccessAsync(CancellationToken cancellationToken) =>
        (await IdentityAsync(cancellationToken).ConfigureAwait(false)).SystemdCgroupAccess;

    /// <summary>Commits a container; on Podman with the config also given as changes, which is all its commit applies.</summary>
    public async Task<CommitContainerChangesResponse> CommitAsync(CommitContainerChangesParameters commit, CancellationToken cancellationToken)
    {
        if ((await IdentityAsync(cancellationToken).ConfigureAwait(false)).IsPodman)
        {
            commit.Changes = CommitChanges.From(commit);
        }
        return await Client.Images.CommitContainerChangesAsync(commit, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Commits a container as <paramref name="reference"/> (repository:tag): under a build-private tag first, then the
    /// real tag once the commit is complete. A failed or cancelled commit never touches the image the real tag named, and
    /// the new image is never untagged in between (a concurrent prune cannot take it). The private tag is dropped
    /// whatever happens; after success the image keeps its real tag.
    /// </summary>
    /// <param name="commitWith">How the commit is made (the top layer rewrite: <see cref="TopLayerRewrite.CommitAsync"/>);
    /// the new image id, which the real tag then names. By default the engine's own commit.</param>
    public async Task<CommitContainerChangesResponse> CommitUnderTemporaryTagAsync(CommitContainerChangesParameters commit, string reference, string buildId,
        CancellationToken cancellationToken, Func<CommitContainerChangesParameters, CancellationToken, Task<string>>? commitWith = null)
    {
        var (repository, tag) = ImageReference.SplitTag(reference);
        commit.RepositoryName = repository;
        commit.Tag = $"build-{buildId}";
        try
        {
            var committed = commitWith is null ? await CommitAsync(commit, cancellationToken).ConfigureAwait(false)
                : new CommitContainerChangesResponse { ID = await commitWith(commit, cancellationToken).ConfigureAwait(false) };
            await Client.Images.TagImageAsync(committed.ID, new ImageTagParameters { RepositoryName = repository, Tag = tag }, cancellationToken).ConfigureAwait(false);
            return committed;
        }
        finally
        {
            await UntagAsync($"{repository}:{commit.Tag}").ConfigureAwait(false);
        }
    }

    /// <summary>A 404: the image or container is not there (Docker.DotNet's NotFound exceptions are DockerApiExceptions too).</summary>
    public static bool IsGone(DockerApiException e) => e.StatusCode == System.Net.HttpStatusCode.NotFound;

    public Task<ImageInspectResponse?> TryInspectImageAsync(string reference, CancellationToken cancellationToken) =>
        TryInspectImageAsync(Client, reference, cancellationToken);

    /// <summary>The same on a client not yet connected (a connection's first call).</summary>
    public static async Task<ImageInspectResponse?> TryInspectImageAsync(DockerClient client, string reference, CancellationToken cancellationToken)
    {
        try
        {
            return await client.Images.InspectImageAsync(reference, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (IsGone(e))
        {
            return null;
        }
    }

    /// <summary>
    /// Removes an image, or one tag of it (the image stays while another tag names it), as a tidy-up: one already gone
    /// (404) or still needed (409: a container uses it, or other images build on it) simply stays. Any other engine
    /// error (a 500, a broken connection) is not the tidy-up's to hide: it is thrown.
    /// </summary>
    /// <param name="keepParents">NoPrune: untagged parent images stay (a build-private tag dropped from a fresh commit).</param>
    public async Task<ImageRemoval> RemoveImageIfPresentAsync(string reference, CancellationToken cancellationToken, bool keepParents = false)
    {
        try
        {
            await Client.Images.DeleteImageAsync(reference, new ImageDeleteParameters { NoPrune = keepParents }, cancellationToken).ConfigureAwait(false);
            return ImageRemoval.Removed;
        }
        catch (DockerApiException e) when (IsGone(e))
        {
            return ImageRemoval.Absent;
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
            return ImageRemoval.InUse;
        }
    }

    /// <summary>Removes one tag (see <see cref="RemoveImageIfPresentAsync"/>), also when the build is being cancelled.</summary>
    public Task UntagAsync(string reference) => RemoveImageIfPresentAsync(reference, CancellationToken.None, keepParents: true);

    /// <summary>Removes a container and its anonymous volumes; a container already gone is fine.</summary>
    public async Task RemoveContainerAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            await Client.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, cancellationToken).ConfigureAwait(false);
        }
        catch (DockerApiException e) when (IsGone(e))
        {
        }
        catch (DockerApiException e) when (e.StatusCode == System.Net.HttpStatusCode.Conflict
            && e.ResponseBody?.Contains("already in progress", StringComparison.Ordinal) == true)
        {
            // Another process (a concurrent build reaping the same orphan) is removing it: it is going.
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

/// <summary>What <see cref="DockerEngine.RemoveImageIfPresentAsync"/> did.</summary>
public enum ImageRemoval
{
    Removed,
    /// <summary>There was no such image or tag (404).</summary>
    Absent,
    /// <summary>The engine kept it (409): a container uses it, or other images build on it.</summary>
    InUse,
}
