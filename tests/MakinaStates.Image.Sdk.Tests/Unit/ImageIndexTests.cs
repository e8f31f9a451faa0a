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
}
