using System.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// A second Docker engine started by a test: its own data root, exec root, containerd and bridge, listening only on
/// tcp://127.0.0.1:&lt;free port&gt; with TLS certificates made here by openssl. To the SDK it is a remote engine: it
/// shares nothing with the build through the file system. Stopped and removed on dispose.
/// </summary>
public sealed class TlsDockerEngine : IAsyncDisposable
{
    private readonly Process _daemon;
    private readonly string _bridge;

    private TlsDockerEngine(string directory, int port, Process daemon, string bridge)
    {
        Directory = directory;
        Port = port;
        _daemon = daemon;
        _bridge = bridge;
    }

    public string Directory { get; }

    public int Port { get; }

    public string Host => $"tcp://127.0.0.1:{Port}";

    /// <summary>The same engine on an address its certificate does not name.</summary>
    public string UnnamedHost => $"tcp://127.0.0.2:{Port}";

    /// <summary>The client's ca.pem, cert.pem and key.pem (a DOCKER_CERT_PATH).</summary>
    public string ClientCertificates => Path.Combine(Directory, "client");

    public string Log => File.Exists(Path.Combine(Directory, "dockerd.log")) ? File.ReadAllText(Path.Combine(Directory, "dockerd.log")) : "";

    public DockerEndpoint Endpoint => new(new Uri(Host), "test", new DockerTls(ClientCertificates, VerifyServer: true));

    public Task<DockerEngine> ConnectAsync() => DockerEngine.ConnectAsync(Endpoint, CancellationToken.None);

    public static async Task<TlsDockerEngine> StartAsync()
    {
        foreach (var tool in new[] { "dockerd", "openssl", "ip" })
        {
            if (!new[] { "/usr/bin", "/usr/sbin", "/bin", "/sbin" }.Any(d => File.Exists(Path.Combine(d, tool))))
            {
                TestDocker.MissingPrerequisite($"{tool} is not installed (bash .ci/setup installs what the tests need)");
            }
        }
        if (Mono.Unix.Native.Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("starting a second dockerd needs root");
        }

        // Short: containerd's sockets live under the exec root and a unix socket path is limited to 108 bytes.
        var directory = System.IO.Directory.CreateTempSubdirectory("mse-").FullName;
        MakeCertificates(directory);
        var port = TestDocker.FreeLoopbackPort();
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var bridge = $"msbr{suffix}";
        // Its own bridge: a daemon with --bridge=none would delete the main engine's docker0.
        HostProcess.Run("ip", "link", "add", bridge, "type", "bridge");
        var routes = HostProcess.Run("ip", "route");
        var subnet = Enumerable.Range(1, 253).Select(n => $"10.213.{n}.").First(prefix => !routes.Contains(prefix, StringComparison.Ordinal));
        HostProcess.Run("ip", "addr", "add", $"{subnet}1/24", "dev", bridge);
        HostProcess.Run("ip", "link", "set", bridge, "up");
        File.WriteAllText(Path.Combine(directory, "daemon.json"), "{}");

        var daemon = HostProcess.StartDaemon(string.Join(' ', "dockerd",
            $"--config-file {directory}/daemon.json --data-root {directory}/data --exec-root {directory}/exec --pidfile {directory}/dockerd.pid",
            $"-H tcp://127.0.0.1:{port} -H tcp://127.0.0.2:{port} --tlsverify --tlscacert {directory}/server/ca.pem --tlscert {directory}/server/cert.pem --tlskey {directory}/server/key.pem",
            $"--bridge={bridge} --iptables=false --ip-masq=false --containerd-namespace msimage-{suffix} --containerd-plugins-namespace msimage-{suffix}-plugins"),
            $"{directory}/dockerd.log");
        var engine = new TlsDockerEngine(directory, port, daemon, bridge);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var connected = await engine.ConnectAsync();
                return engine;
            }
            catch (Exception) when (DateTime.UtcNow < deadline && !daemon.HasExited)
            {
                await Task.Delay(250);
            }
            catch (Exception e)
            {
                var log = engine.Log;
                await engine.DisposeAsync();
                Assert.Fail($"the second dockerd did not answer on {engine.Host}: {e.Message}\n{log}");
                throw;
            }
        }
    }

    /// <summary>A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as docker's TLS guide makes them.</summary>
    private static void MakeCertificates(string directory)
    {
        var server = System.IO.Directory.CreateDirectory(Path.Combine(directory, "server")).FullName;
        var client = System.IO.Directory.CreateDirectory(Path.Combine(directory, "client")).FullName;
        var ca = MakeAuthority(directory, "ca", "msimage-test-ca");
        HostProcess.Run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", $"{server}/key.pem", "-out", $"{server}/req.csr", "-subj", "/CN=localhost");
        File.WriteAllText($"{server}/ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
        Sign(ca, $"{server}/req.csr", $"{server}/cert.pem", $"{server}/ext.cnf");
        File.Copy($"{ca}/ca.pem", $"{server}/ca.pem");
        HostProcess.Run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", $"{client}/key.pem", "-out", $"{client}/req.csr", "-subj", "/CN=msimage-test-client");
        File.WriteAllText($"{client}/ext.cnf", "extendedKeyUsage=clientAuth\n");
        Sign(ca, $"{client}/req.csr", $"{client}/cert.pem", $"{client}/ext.cnf");
        File.Copy($"{ca}/ca.pem", $"{client}/ca.pem");
    }

    /// <summary>A self-signed CA in directory/name (ca.pem, ca-key.pem).</summary>
    public static string MakeAuthority(string directory, string name, string commonName)
    {
        var ca = System.IO.Directory.CreateDirectory(Path.Combine(directory, name)).FullName;
        HostProcess.Run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", $"{ca}/ca-key.pem", "-out", $"{ca}/ca.pem", "-days", "2", "-subj", $"/CN={commonName}");
        return ca;
    }

    private static void Sign(string ca, string request, string certificate, string extensions) =>
        HostProcess.Run("openssl", "x509", "-req", "-in", request, "-CA", $"{ca}/ca.pem", "-CAkey", $"{ca}/ca-key.pem", "-CAcreateserial",
            "-out", certificate, "-days", "2", "-extfile", extensions);

    public async ValueTask DisposeAsync()
    {
        await HostProcess.StopDaemonAsync(_daemon);
        HostProcess.RunIgnoringFailure("ip", "link", "del", _bridge);
        // Mounts the daemon may leave (the default network namespace) would keep the folder from being removed.
        foreach (var mount in File.ReadAllLines("/proc/self/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(Directory + "/", StringComparison.Ordinal)).Reverse())
        {
            HostProcess.RunIgnoringFailure("umount", "-l", mount);
        }
        HostProcess.RunIgnoringFailure("rm", "-rf", Directory);
    }
}
