using System.Net;
using System.Text;
using MakinaStates.Image.Sdk.Registry;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The index JSON the registry stores (its bytes are its digest), and the registry's auth challenges.</summary>
[TestClass]
public sealed class ImageIndexTests
{
    private const string Amd64Digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private const string ArmDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    [TestMethod]
    public void Docker_manifests_make_a_manifest_list_in_the_order_given_with_a_variant_only_when_the_platform_has_one()
    {
        var (mediaType, json) = ImageIndex.Create([
            new(new ManifestDescriptor(RegistryApi.DockerManifest, ArmDigest, 528), ImagePlatform.Parse("linux/arm/v7", "test")),
            new(new ManifestDescriptor(RegistryApi.DockerManifest, Amd64Digest, 527), ImagePlatform.Parse("linux/amd64", "test")),
        ]);
        Assert.AreEqual("application/vnd.docker.distribution.manifest.list.v2+json", mediaType);
        Assert.AreEqual($$"""
            {
              "schemaVersion": 2,
              "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
              "manifests": [
                {
                  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                  "size": 528,
                  "digest": "{{ArmDigest}}",
                  "platform": {
                    "architecture": "arm",
                    "os": "linux",
                    "variant": "v7"
                  }
                },
                {
                  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                  "size": 527,
                  "digest": "{{Amd64Digest}}",
                  "platform": {
                    "architecture": "amd64",
                    "os": "linux"
                  }
                }
              ]
            }
            """, Encoding.UTF8.GetString(json));
    }

    [TestMethod]
    public void Oci_manifests_make_an_oci_index_and_the_same_entries_the_same_bytes()
    {
        ImageIndex.Entry[] entries = [
            new(new ManifestDescriptor(RegistryApi.OciManifest, Amd64Digest, 400), ImagePlatform.Parse("linux/amd64", "test")),
            new(new ManifestDescriptor(RegistryApi.OciManifest, ArmDigest, 401), ImagePlatform.Parse("linux/arm64", "test")),
        ];
        var (mediaType, json) = ImageIndex.Create(entries);
        Assert.AreEqual("application/vnd.oci.image.index.v1+json", mediaType);
        StringAssert.StartsWith(Encoding.UTF8.GetString(json), """
            {
              "schemaVersion": 2,
              "mediaType": "application/vnd.oci.image.index.v1+json",
              "manifests": [
                {
                  "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "size": 400,
            """);
        StringAssert.Contains(Encoding.UTF8.GetString(json), """
                  "platform": {
                    "architecture": "arm64",
                    "os": "linux"
                  }
            """);
        CollectionAssert.AreEqual(json, ImageIndex.Create(entries).Json);
        Assert.AreNotEqual(RegistryApi.DigestOf(json), RegistryApi.DigestOf(ImageIndex.Create([.. entries.Reverse()]).Json), "the order is part of the index");
    }

    [TestMethod]
    public void An_index_lists_image_manifests_only()
    {
        Assert.ThrowsExactly<ArgumentException>(() => ImageIndex.Create([]));
        Assert.ThrowsExactly<ArgumentException>(() => ImageIndex.Create([
            new(new ManifestDescriptor(RegistryApi.DockerManifestList, Amd64Digest, 300), ImagePlatform.Parse("linux/amd64", "test"))]));
    }

    [TestMethod]
    public void A_basic_challenge_names_its_realm()
    {
        var (scheme, parameters) = RegistryApi.ParseChallenge("Basic realm=\"msimage-test\"")!.Value;
        Assert.AreEqual("Basic", scheme);
        Assert.AreEqual("msimage-test", parameters["realm"]);
        Assert.AreEqual("Basic", RegistryApi.ParseChallenge("Basic")!.Value.Scheme);
        Assert.IsNull(RegistryApi.ParseChallenge(""));
        Assert.IsNull(RegistryApi.ParseChallenge(null));
    }

    [TestMethod]
    public void A_bearer_challenge_keeps_commas_and_escapes_inside_quotes()
    {
        var (scheme, parameters) = RegistryApi.ParseChallenge(
            "Bearer realm=\"https://auth.example.org/token\",service=\"registry.example.org\",scope=\"repository:team/app:pull,push\", error=insufficient_scope, note=\"a \\\"quoted\\\" word\"")!.Value;
        Assert.AreEqual("Bearer", scheme);
        Assert.AreEqual("https://auth.example.org/token", parameters["realm"]);
        Assert.AreEqual("registry.example.org", parameters["service"]);
        Assert.AreEqual("repository:team/app:pull,push", parameters["scope"]);
        Assert.AreEqual("insufficient_scope", parameters["error"]);
        Assert.AreEqual("a \"quoted\" word", parameters["note"]);
        Assert.AreEqual("https://auth.example.org/token", parameters["Realm"], "auth-param names are case-insensitive");
    }

    [TestMethod]
    public void Only_loopback_registries_are_reached_over_plain_http()
    {
        foreach (var registry in new[] { "127.0.0.1:5000", "127.1.2.3", "localhost:5000", "LOCALHOST", "[::1]:5000", "::1" })
        {
            Assert.IsTrue(RegistryApi.IsLoopback(registry), registry);
        }
        foreach (var registry in new[] { "registry.example.org", "10.0.0.1:5000", "128.0.0.1", "localhost.example.org:5000", "[::2]:5000" })
        {
            Assert.IsFalse(RegistryApi.IsLoopback(registry), registry);
        }
    }

    [TestMethod]
    public async Task A_bearer_registry_gets_a_token_from_its_realm_with_the_basic_credentials_and_the_push_scope()
    {
        var port = Support.TestDocker.FreeLoopbackPort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        var tokenQueries = new List<string>();
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("pusher:pw"));
        using var stop = new CancellationTokenSource();
        // A registry that wants a token (distribution's token auth), and its token service on the same port.
        var server = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var context = await listener.GetContextAsync().WaitAsync(stop.Token);
                var (request, response) = (context.Request, context.Response);
                var authorization = request.Headers["Authorization"] ?? "";
                if (request.Url!.AbsolutePath == "/token")
                {
                    tokenQueries.Add(request.Url.Query);
                    response.StatusCode = authorization == $"Basic {basic}" ? 200 : 401;
                    await response.OutputStream.WriteAsync(Encoding.UTF8.GetBytes(response.StatusCode == 200 ? """{"access_token":"tok-123"}""" : "{}"));
                }
                else if (authorization != "Bearer tok-123")
                {
                    response.StatusCode = 401;
                    response.Headers["WWW-Authenticate"] = $"Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"test registry\",scope=\"repository:team/app:pull\"";
                    await response.OutputStream.WriteAsync("""{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"""u8.ToArray());
                }
                else if (request.HttpMethod == "PUT")
                {
                    using var body = new MemoryStream();
                    await request.InputStream.CopyToAsync(body);
                    response.StatusCode = request.ContentType == RegistryApi.DockerManifestList ? 201 : 400;
                    response.Headers["Docker-Content-Digest"] = RegistryApi.DigestOf(body.ToArray());
                }
                else
                {
                    response.StatusCode = 404;
                }
                response.Close();
            }
        });

        try
        {
            var index = """{"schemaVersion":2}"""u8.ToArray();
            using (var api = new RegistryApi($"127.0.0.1:{port}", "team/app", new Settings.RegistryCredentials("pusher", "pw", "", "test")))
            {
                Assert.AreEqual(RegistryApi.DigestOf(index), await api.PutManifestAsync("1.0", index, RegistryApi.DockerManifestList, CancellationToken.None));
                Assert.IsNull(await api.HeadManifestAsync("2.0", CancellationToken.None), "the token is kept for the next calls");
            }
            CollectionAssert.AreEqual(new[] { "?service=test%20registry&scope=repository%3Ateam%2Fapp%3Apull%2Cpush" }, tokenQueries.ToArray());

            using var anonymous = new RegistryApi($"127.0.0.1:{port}", "team/app", null);
            var refused = await Assert.ThrowsExactlyAsync<RegistryApiException>(() => anonymous.PutManifestAsync("1.0", index, RegistryApi.DockerManifestList, CancellationToken.None));
            Assert.AreEqual(RegistryFailure.Unauthorized, refused.Failure, refused.Message);
        }
        finally
        {
            stop.Cancel();
            listener.Stop();
            await Task.WhenAny(server);
        }
    }
}
