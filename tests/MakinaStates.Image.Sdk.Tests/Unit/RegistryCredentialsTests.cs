using System.Text;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Registry;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class RegistryCredentialsTests
{
    private string _home = "";

    [TestInitialize]
    public void MakeHome() => _home = Directory.CreateTempSubdirectory("credentials-").FullName;

    [TestCleanup]
    public void RemoveHome() => Directory.Delete(_home, recursive: true);

    private void WriteConfig(string json)
    {
        Directory.CreateDirectory(Path.Combine(_home, ".docker"));
        File.WriteAllText(Path.Combine(_home, ".docker", "config.json"), json);
    }

    private RegistryCredentials? Resolve(string registry, string? user = null, string? password = null, Dictionary<string, string>? environment = null) =>
        RegistryCredentials.Resolve(registry, user, password, name => environment?.GetValueOrDefault(name), _home);

    [TestMethod]
    public void The_properties_win_and_the_password_may_come_from_MS_REGISTRY_PASSWORD()
    {
        WriteConfig("""{"auths":{"127.0.0.1:5000":{"auth":"ZnJvbTpjb25maWc="}}}""");
        Assert.AreEqual(new RegistryCredentials("ci", "p", "", "MsRegistryUsername"), Resolve("127.0.0.1:5000", "ci", "p"));
        Assert.AreEqual("from-env", Resolve("127.0.0.1:5000", "ci", environment: new() { ["MS_REGISTRY_PASSWORD"] = "from-env" })!.Password);
        var alone = Assert.ThrowsExactly<ImageBuildException>(() => Resolve("127.0.0.1:5000", password: "p"));
        Assert.AreEqual(MsiCodes.RegistryCredentialsInvalid, alone.Code);
    }

    [TestMethod]
    public void Docker_login_entries_are_found_by_host_whatever_form_the_key_takes()
    {
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes("user:pa:ss"));
        WriteConfig(System.Text.Json.JsonSerializer.Serialize(new
        {
            auths = new Dictionary<string, object>
            {
                ["http://127.0.0.1:5000/v2/"] = new { auth },
                ["https://index.docker.io/v1/"] = new { username = "hub", password = "hp" },
            },
        }));
        var local = Resolve("127.0.0.1:5000")!;
        Assert.AreEqual("user", local.Username);
        Assert.AreEqual("pa:ss", local.Password, "only the first ':' separates user and password");
        Assert.AreEqual("hub", Resolve("docker.io")!.Username);
        Assert.IsNull(Resolve("127.0.0.1:5001"), "another port is another registry");
        Assert.IsFalse(local.ToString().Contains("pa:ss", StringComparison.Ordinal), "the description never holds the password");
        StringAssert.Contains(local.Describe(), "config.json");
    }

    [TestMethod]
    public void No_config_means_anonymous_and_a_broken_entry_is_a_coded_error()
    {
        Assert.IsNull(Resolve("127.0.0.1:5000"));
        WriteConfig("""{"auths":{"127.0.0.1:5000":{"auth":"bm8tY29sb24="}}}""");
        var broken = Assert.ThrowsExactly<ImageBuildException>(() => Resolve("127.0.0.1:5000"));
        Assert.AreEqual(MsiCodes.RegistryCredentialsInvalid, broken.Code);
        Assert.IsFalse(broken.Message.Contains("no-colon", StringComparison.Ordinal), "the undecoded secret is not echoed");
    }

    /// <summary>A credential helper as docker-credential-* programs behave: the registry on stdin, JSON out.</summary>
    private string WriteHelper(string name, string script)
    {
        var bin = Directory.CreateDirectory(Path.Combine(_home, "bin")).FullName;
        var path = Path.Combine(bin, $"docker-credential-{name}");
        File.WriteAllText(path, "#!/bin/sh\n" + script);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return bin;
    }

    [TestMethod]
    public void Credential_helpers_are_asked_first_per_registry_then_the_default_store()
    {
        var bin = WriteHelper("store", """
            read server
            [ "$1" = get ] || exit 9
            case "$server" in
              127.0.0.1:5000) echo '{"ServerURL":"127.0.0.1:5000","Username":"from-store","Secret":"s1"}' ;;
              *) echo "credentials not found in native keychain"; exit 1 ;;
            esac
            """);
        WriteHelper("special", """echo '{"ServerURL":"x","Username":"<token>","Secret":"identity-token"}'""");
        WriteConfig("""{"credsStore":"store","credHelpers":{"registry.example.org":"special"},"auths":{"127.0.0.1:6000":{"auth":"YTpi"}}}""");
        var path = new Dictionary<string, string> { ["PATH"] = bin };

        Assert.AreEqual(new RegistryCredentials("from-store", "s1", "", "credential helper docker-credential-store"), Resolve("127.0.0.1:5000", environment: path));
        var token = Resolve("registry.example.org", environment: path)!;
        Assert.AreEqual(("", "identity-token"), (token.Username, token.IdentityToken), "'<token>' means an identity token");
        Assert.AreEqual("a", Resolve("127.0.0.1:6000", environment: path)!.Username, "not in the store: the auths entry");
        Assert.IsNull(Resolve("127.0.0.1:7000", environment: path));

        var missing = Assert.ThrowsExactly<ImageBuildException>(() => Resolve("127.0.0.1:5000", environment: new() { ["PATH"] = "/nonexistent" }));
        Assert.AreEqual(MsiCodes.RegistryCredentialsInvalid, missing.Code);
        StringAssert.Contains(missing.Message, "docker-credential-store is not on the PATH");

        WriteHelper("store", "echo 'Secret=leaky not json'\n");
        var garbled = Assert.ThrowsExactly<ImageBuildException>(() => Resolve("127.0.0.1:5000", environment: path));
        Assert.IsFalse(garbled.Message.Contains("leaky", StringComparison.Ordinal), "a malformed answer is not echoed");
    }

    [TestMethod]
    [DataRow("Get \"http://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused", RegistryFailure.Unreachable)]
    [DataRow("Get \"https://nowhere.invalid/v2/\": dial tcp: lookup nowhere.invalid: no such host", RegistryFailure.Unreachable)]
    [DataRow("no basic auth credentials", RegistryFailure.Unauthorized)]
    [DataRow("unauthorized: authentication required", RegistryFailure.Unauthorized)]
    [DataRow("denied: requested access to the resource is denied", RegistryFailure.Unauthorized)]
    [DataRow("blob unknown: blob unknown to registry", RegistryFailure.BlobUnknown)]
    [DataRow("manifest invalid: manifest invalid", RegistryFailure.Other)]
    [DataRow("open /var/lib/docker/image/layerdb: permission denied", RegistryFailure.Other)]
    public void Push_errors_are_told_apart(string error, RegistryFailure expected) =>
        Assert.AreEqual(expected, RegistryPush.Classify(error));
}
