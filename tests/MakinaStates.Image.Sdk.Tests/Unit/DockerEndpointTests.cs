using System.Security.Cryptography;
using System.Text;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>Engine selection in docker's order: MsDockerHost, DOCKER_HOST, DOCKER_CONTEXT / current context, the socket.</summary>
[TestClass]
public sealed class DockerEndpointTests
{
    private string _home = "";

    [TestInitialize]
    public void MakeHome() => _home = Directory.CreateTempSubdirectory("endpoint-").FullName;

    [TestCleanup]
    public void RemoveHome() => Directory.Delete(_home, recursive: true);

    private DockerEndpoint Resolve(string? host = null, string? certPath = null, string? verify = null, Dictionary<string, string>? environment = null) =>
        DockerEndpoint.Resolve(host, certPath, verify, name => environment?.GetValueOrDefault(name), _home);

    private string WriteContext(string name, string host, bool skipVerify = false, bool withTls = true, string? configDirectory = null)
    {
        var config = configDirectory ?? Path.Combine(_home, ".docker");
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        Directory.CreateDirectory(Path.Combine(config, "contexts", "meta", id));
        File.WriteAllText(Path.Combine(config, "contexts", "meta", id, "meta.json"),
            System.Text.Json.JsonSerializer.Serialize(new { Name = name, Endpoints = new { docker = new { Host = host, SkipTLSVerify = skipVerify } } }));
        var tls = Path.Combine(config, "contexts", "tls", id, "docker");
        if (withTls)
        {
            Directory.CreateDirectory(tls);
        }
        return tls;
    }

    [TestMethod]
    public void Nothing_set_means_the_local_socket()
    {
        var endpoint = Resolve();
        Assert.AreEqual("unix:///var/run/docker.sock", endpoint.Display);
        Assert.IsNull(endpoint.Tls);
        Assert.AreEqual("the default", endpoint.Origin);
    }

    [TestMethod]
    public void MsDockerHost_wins_over_DOCKER_HOST_which_wins_over_the_context()
    {
        WriteContext("ctx", "tcp://10.0.0.9:2376");
        var environment = new Dictionary<string, string> { ["DOCKER_HOST"] = "tcp://10.0.0.2:2375", ["DOCKER_CONTEXT"] = "ctx" };
        Assert.AreEqual("tcp://10.0.0.1:2375", Resolve("tcp://10.0.0.1:2375", environment: environment).Display);
        Assert.AreEqual("MsDockerHost", Resolve("tcp://10.0.0.1:2375", environment: environment).Origin);
        Assert.AreEqual("tcp://10.0.0.2:2375", Resolve(environment: environment).Display);
        environment.Remove("DOCKER_HOST");
        Assert.AreEqual("tcp://10.0.0.9:2376", Resolve(environment: environment).Display);
        StringAssert.Contains(Resolve(environment: environment).Origin, "docker context 'ctx' (DOCKER_CONTEXT)");
    }

    [TestMethod]
    public void DOCKER_TLS_VERIFY_and_DOCKER_CERT_PATH_give_verified_TLS_and_the_properties_win()
    {
        var environment = new Dictionary<string, string> { ["DOCKER_HOST"] = "tcp://engine:2376", ["DOCKER_TLS_VERIFY"] = "1", ["DOCKER_CERT_PATH"] = "/env/certs" };
        Assert.AreEqual(new DockerTls("/env/certs", VerifyServer: true), Resolve(environment: environment).Tls);
        Assert.AreEqual(new DockerTls("/prop/certs", VerifyServer: true), Resolve(certPath: "/prop/certs", environment: environment).Tls);
        // Verification switched off by the property: still TLS, without checking the engine (docker's --tlsverify=false).
        Assert.AreEqual(new DockerTls("/prop/certs", VerifyServer: false), Resolve(certPath: "/prop/certs", verify: "false", environment: environment).Tls);
        Assert.AreEqual(new DockerTls("/env/certs", VerifyServer: false), Resolve(verify: "false", environment: environment).Tls);
        Assert.IsNull(Resolve(environment: new() { ["DOCKER_HOST"] = "tcp://engine:2375" }).Tls, "plain tcp when nothing asks for TLS");
        // The cert path defaults to the docker config folder, as for the docker CLI.
        environment.Remove("DOCKER_CERT_PATH");
        Assert.AreEqual(new DockerTls(Path.Combine(_home, ".docker"), VerifyServer: true), Resolve(environment: environment).Tls);
        StringAssert.Contains(Resolve(environment: environment).Describe(), "over TLS, engine verified against");
    }

    [TestMethod]
    public void A_tcp_address_without_a_port_gets_dockers_default_port()
    {
        Assert.AreEqual("tcp://engine:2375", Resolve("tcp://engine").Display);
        Assert.AreEqual("tcp://engine:2376", Resolve("tcp://engine", verify: "true").Display);
    }

    [TestMethod]
    public void DOCKER_CERT_PATH_does_not_replace_a_contexts_own_TLS_files()
    {
        var tls = WriteContext("own", "tcp://ctx:2376");
        var environment = new Dictionary<string, string> { ["DOCKER_CONTEXT"] = "own", ["DOCKER_CERT_PATH"] = "/left/over" };
        Assert.AreEqual(new DockerTls(tls, VerifyServer: true), Resolve(environment: environment).Tls);
        WriteContext("plain", "tcp://plain:2375", withTls: false);
        Assert.IsNull(Resolve(environment: new() { ["DOCKER_CONTEXT"] = "plain", ["DOCKER_CERT_PATH"] = "/left/over" }).Tls);
        Assert.AreEqual(new DockerTls("/prop", VerifyServer: true), Resolve(certPath: "/prop", environment: environment).Tls, "the property still wins");
    }

    [TestMethod]
    public void A_unix_socket_never_gets_TLS()
    {
        Assert.IsNull(Resolve("unix:///run/docker.sock", verify: "true").Tls);
    }

    [TestMethod]
    public void The_current_context_of_config_json_is_used_with_its_TLS_files()
    {
        var tls = WriteContext("remote", "tcp://build-engine:2376");
        Directory.CreateDirectory(Path.Combine(_home, ".docker"));
        File.WriteAllText(Path.Combine(_home, ".docker", "config.json"), """{"currentContext":"remote"}""");
        var endpoint = Resolve();
        Assert.AreEqual("tcp://build-engine:2376", endpoint.Display);
        Assert.AreEqual(new DockerTls(tls, VerifyServer: true), endpoint.Tls);

        var skip = WriteContext("skip", "tcp://other:2376", skipVerify: true);
        Assert.AreEqual(new DockerTls(skip, VerifyServer: false), Resolve(environment: new() { ["DOCKER_CONTEXT"] = "skip" }).Tls);
        var skipWithoutFiles = WriteContext("skip-no-files", "tcp://other:2376", skipVerify: true, withTls: false);
        Assert.AreEqual(new DockerTls(skipWithoutFiles, VerifyServer: false), Resolve(environment: new() { ["DOCKER_CONTEXT"] = "skip-no-files" }).Tls);
        WriteContext("plain", "tcp://plain:2375", withTls: false);
        Assert.IsNull(Resolve(environment: new() { ["DOCKER_CONTEXT"] = "plain" }).Tls);
        Assert.AreEqual("the default", Resolve(environment: new() { ["DOCKER_CONTEXT"] = "default" }).Origin);
    }

    [TestMethod]
    public void DOCKER_CONFIG_moves_the_config_and_contexts()
    {
        var config = Path.Combine(_home, "elsewhere");
        WriteContext("moved", "tcp://moved:2376", configDirectory: config);
        File.WriteAllText(Path.Combine(config, "config.json"), """{"currentContext":"moved"}""");
        Assert.AreEqual("tcp://moved:2376", Resolve(environment: new() { ["DOCKER_CONFIG"] = config }).Display);
    }

    [TestMethod]
    public void Bad_values_are_coded_errors_that_name_their_origin()
    {
        var invalidHost = Assert.ThrowsExactly<ImageBuildException>(() => Resolve("ftp://nowhere"));
        Assert.AreEqual(MsiCodes.DockerHostInvalid, invalidHost.Code);
        StringAssert.Contains(invalidHost.Message, "MsDockerHost");

        var invalidVerify = Assert.ThrowsExactly<ImageBuildException>(() => Resolve(verify: "maybe"));
        Assert.AreEqual(MsiCodes.DockerHostInvalid, invalidVerify.Code);

        var missing = Assert.ThrowsExactly<ImageBuildException>(() => Resolve(environment: new() { ["DOCKER_CONTEXT"] = "nope" }));
        Assert.AreEqual(MsiCodes.DockerContextInvalid, missing.Code);
        StringAssert.Contains(missing.Message, "'nope' (from DOCKER_CONTEXT) does not exist");

        Directory.CreateDirectory(Path.Combine(_home, ".docker"));
        File.WriteAllText(Path.Combine(_home, ".docker", "config.json"), "{ not json");
        var broken = Assert.ThrowsExactly<ImageBuildException>(() => Resolve());
        Assert.AreEqual(MsiCodes.DockerContextInvalid, broken.Code);
        StringAssert.Contains(broken.Message, "config.json");
    }

    [TestMethod]
    public void Container_host_comes_after_the_docker_settings()
    {
        var podman = new Dictionary<string, string> { ["CONTAINER_HOST"] = "unix:///run/user/1000/podman/podman.sock" };
        Assert.AreEqual("unix:///run/user/1000/podman/podman.sock", Resolve(environment: podman).Display);
        Assert.AreEqual("CONTAINER_HOST", Resolve(environment: podman).Origin);
        Assert.AreEqual(0, Resolve(environment: podman).Fallbacks.Count, "an explicit choice has no fallback");
        var both = new Dictionary<string, string>(podman) { ["DOCKER_HOST"] = "tcp://10.0.0.1:2375" };
        Assert.AreEqual("DOCKER_HOST", Resolve(environment: both).Origin);
        Assert.AreEqual("MsDockerHost", Resolve("unix:///x.sock", environment: podman).Origin);
    }

    [TestMethod]
    public void The_default_socket_falls_back_to_podmans_user_then_system_socket()
    {
        var endpoint = Resolve(environment: new Dictionary<string, string> { ["XDG_RUNTIME_DIR"] = "/run/user/1000" });
        Assert.AreEqual(DockerEndpoint.DefaultAddress, endpoint.Display);
        CollectionAssert.AreEqual(new[] { "unix:///run/user/1000/podman/podman.sock", DockerEndpoint.PodmanAddress },
            endpoint.Fallbacks.Select(f => f.Display).ToArray());
        CollectionAssert.AreEqual(new[] { DockerEndpoint.PodmanAddress }, Resolve().Fallbacks.Select(f => f.Display).ToArray());
    }

    [TestMethod]
    public void Ssh_addresses_name_their_target_and_need_no_tls()
    {
        var docker = Resolve(environment: new() { ["DOCKER_HOST"] = "ssh://me@builder", ["DOCKER_TLS_VERIFY"] = "1" });
        Assert.AreEqual(new SshTarget("me", "builder", null, null), docker.Ssh);
        Assert.IsNull(docker.Tls, "SSH secures the connection");
        Assert.AreEqual("ssh://me@builder over SSH, docker system dial-stdio on the remote (from DOCKER_HOST)", docker.Describe());
        var podman = Resolve(environment: new() { ["CONTAINER_HOST"] = "ssh://core@127.0.0.1:50000/run/user/501/podman/podman.sock" });
        Assert.AreEqual(new SshTarget("core", "127.0.0.1", 50000, "/run/user/501/podman/podman.sock"), podman.Ssh);
        StringAssert.Contains(podman.Describe(), "its socket /run/user/501/podman/podman.sock forwarded (from CONTAINER_HOST)");
        CollectionAssert.AreEqual(new[] { "-l", "core", "-p", "50000" }, podman.Ssh!.Options().ToArray());
        Assert.AreEqual(new SshTarget(null, "builder", null, null), Resolve("ssh://builder").Ssh, "no user: ssh's own (its config, or the login)");
    }

    [TestMethod]
    public void A_password_in_an_ssh_address_is_MSI0102_and_never_repeated()
    {
        var error = Assert.ThrowsExactly<ImageBuildException>(() => Resolve("ssh://me:hunter2@builder"));
        Assert.AreEqual(MsiCodes.DockerHostInvalid, error.Code);
        Assert.IsFalse(error.Message.Contains("hunter2", StringComparison.Ordinal), error.Message);
        StringAssert.Contains(error.Message, "ssh://me@builder");
    }

    [TestMethod]
    public void A_docker_context_with_an_ssh_endpoint_is_an_ssh_engine()
    {
        WriteContext("remote", "ssh://deploy@build.example:2222", withTls: false);
        var endpoint = Resolve(environment: new() { ["DOCKER_CONTEXT"] = "remote" });
        Assert.AreEqual(new SshTarget("deploy", "build.example", 2222, null), endpoint.Ssh);
        StringAssert.Contains(endpoint.Describe(), "(from docker context 'remote' (DOCKER_CONTEXT))");
    }

    [TestMethod]
    public void Podmans_default_connection_is_the_last_fallback_with_its_key_and_one_can_be_named()
    {
        var containers = Directory.CreateDirectory(Path.Combine(_home, ".config", "containers")).FullName;
        File.WriteAllText(Path.Combine(containers, "podman-connections.json"), """
            {"Connection":{"Default":"machine","Connections":{
              "machine":{"URI":"ssh://core@127.0.0.1:50123/run/user/501/podman/podman.sock","Identity":"/home/me/.ssh/machine","IsMachine":true},
              "rootful":{"URI":"ssh://root@127.0.0.1:50123/run/podman/podman.sock","Identity":"/home/me/.ssh/machine"}}}}
            """);
        var fallback = Resolve().Fallbacks[^1];
        Assert.AreEqual(new SshTarget("core", "127.0.0.1", 50123, "/run/user/501/podman/podman.sock", "/home/me/.ssh/machine"), fallback.Ssh);
        StringAssert.Contains(fallback.Origin, "Podman's default connection: Podman connection 'machine'");
        CollectionAssert.IsSubsetOf(new[] { "-i", "/home/me/.ssh/machine" }, fallback.Ssh!.Options().ToArray());

        var named = Resolve(environment: new() { ["CONTAINER_CONNECTION"] = "rootful" });
        Assert.AreEqual("/run/podman/podman.sock", named.Ssh!.SocketPath, "CONTAINER_CONNECTION picks it first, as podman --remote does");
        var missing = Assert.ThrowsExactly<ImageBuildException>(() => Resolve(environment: new() { ["CONTAINER_CONNECTION"] = "gone" }));
        Assert.AreEqual(MsiCodes.DockerContextInvalid, missing.Code);
        StringAssert.Contains(missing.Message, "podman system connection list");
        Assert.AreEqual(DockerEndpoint.DefaultAddress, Resolve(environment: new() { ["DOCKER_HOST"] = DockerEndpoint.DefaultAddress }).Display,
            "an explicit choice has no Podman fallback");
    }

    [TestMethod]
    public void Podman_4s_containers_conf_gives_the_active_service()
    {
        var containers = Directory.CreateDirectory(Path.Combine(_home, ".config", "containers")).FullName;
        File.WriteAllText(Path.Combine(containers, "containers.conf"), """
            [engine]
            active_service = "builder"
            [engine.service_destinations]
              [engine.service_destinations.builder]
              uri = "ssh://root@10.0.0.5:22/run/podman/podman.sock"
              identity = "/root/.ssh/builder"
              [engine.service_destinations.other]
              uri = "ssh://root@10.0.0.6/run/podman/podman.sock"
            """);
        var fallback = Resolve().Fallbacks[^1];
        Assert.AreEqual(new SshTarget("root", "10.0.0.5", 22, "/run/podman/podman.sock", "/root/.ssh/builder"), fallback.Ssh, "a port written is a port given to ssh");
        Assert.AreEqual("10.0.0.6", Resolve(environment: new() { ["CONTAINER_CONNECTION"] = "other" }).Ssh!.Host);
        File.WriteAllText(Path.Combine(containers, "containers.conf"), "[engine\nnot toml");
        Assert.IsNull(Resolve().Fallbacks[^1].Ssh, "a containers.conf Podman could not read either gives no connection");
    }

    [TestMethod]
    public void The_ssh_command_goes_to_the_endpoint_and_its_fallbacks()
    {
        var containers = Directory.CreateDirectory(Path.Combine(_home, ".config", "containers")).FullName;
        File.WriteAllText(Path.Combine(containers, "podman-connections.json"),
            """{"Connection":{"Default":"m","Connections":{"m":{"URI":"ssh://core@127.0.0.1:50123/run/podman/podman.sock"}}}}""");
        var endpoint = Resolve().WithSshCommand(["ssh", "-F", "/etc/ci/ssh_config"]);
        CollectionAssert.AreEqual(new[] { "ssh", "-F", "/etc/ci/ssh_config" }, endpoint.Fallbacks[^1].SshCommand.ToArray());
        CollectionAssert.AreEqual(new[] { "ssh" }, Resolve().WithSshCommand([]).Fallbacks[^1].SshCommand.ToArray(), "empty: ssh from PATH");
    }
}
