using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// Debian's docker-registry (distribution 2.x) on 127.0.0.1:&lt;free port&gt;, started by a test with its own storage,
/// optionally behind htpasswd basic auth. The engine treats 127.0.0.0/8 registries as insecure, so plain HTTP works.
/// </summary>
public sealed class LocalRegistry : IDisposable
{
    private readonly Process _process;

    private LocalRegistry(string directory, int port, Process process, string? username, string? password)
    {
        Directory = directory;
        Port = port;
        _process = process;
        Username = username;
        Password = password;
    }

    public string Directory { get; }

    public int Port { get; }

    public string Address => $"127.0.0.1:{Port}";

    public string? Username { get; }

    public string? Password { get; }

    public string Log => File.Exists(Path.Combine(Directory, "registry.log")) ? File.ReadAllText(Path.Combine(Directory, "registry.log")) : "";

    public static async Task<LocalRegistry> StartAsync(string? username = null, string? password = null)
    {
        var binary = "/usr/bin/docker-registry";
        if (!File.Exists(binary) || (username is not null && !File.Exists("/usr/bin/htpasswd")))
        {
            TestDocker.MissingPrerequisite("docker-registry (and htpasswd from apache2-utils) are not installed; bash .ci/setup installs them");
        }
        var directory = System.IO.Directory.CreateTempSubdirectory("msimage-registry-").FullName;
        var port = TestDocker.FreeLoopbackPort();
        var auth = "";
        if (username is not null)
        {
            // -B: bcrypt, the only scheme the registry accepts.
            File.WriteAllText(Path.Combine(directory, "htpasswd"), HostProcess.Run("htpasswd", "-Bbn", username, password ?? "").Trim() + "\n");
            auth = $"""
                auth:
                  htpasswd:
                    realm: msimage-test
                    path: {directory}/htpasswd
                """;
        }
        File.WriteAllText(Path.Combine(directory, "config.yml"), $"""
            version: 0.1
            log:
              level: info
            storage:
              filesystem:
                rootdirectory: {directory}/storage
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:{port}
            {auth}
            """);
        var registry = new LocalRegistry(directory, port, HostProcess.StartDaemon($"{binary} serve {directory}/config.yml", $"{directory}/registry.log"), username, password);
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                using var response = await http.GetAsync($"http://{registry.Address}/v2/");
                // 200 without auth, 401 with: either way it answers.
                return registry;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline && !registry._process.HasExited)
            {
                await Task.Delay(100);
            }
            catch (HttpRequestException e)
            {
                var log = registry.Log;
                registry.Dispose();
                Assert.Fail($"docker-registry did not answer on {registry.Address}: {e.Message}\n{log}");
                throw;
            }
        }
    }

    /// <summary>GET /v2/&lt;repository&gt;/manifests/&lt;tag&gt; as a v2 client: the Docker-Content-Digest header and the body.</summary>
    public async Task<(HttpStatusCode Status, string? Digest, byte[] Body)> GetManifestAsync(string repository, string tag)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{Address}/v2/{repository}/manifests/{tag}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.docker.distribution.manifest.v2+json"));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.oci.image.manifest.v1+json"));
        if (Username is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{Username}:{Password}")));
        }
        using var response = await http.SendAsync(request);
        var digest = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
        return (response.StatusCode, digest, await response.Content.ReadAsByteArrayAsync());
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }
        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
