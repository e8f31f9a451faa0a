using System.Formats.Tar;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Registry;
using MakinaStates.Image.Sdk.Tasks;
using MakinaStates.Image.Sdk.Tests.Support;
using TaskItem = Microsoft.Build.Utilities.TaskItem;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// PushImageIndex against Debian's docker-registry on 127.0.0.1 (open, and behind htpasswd): two tiny images whose
/// configs say amd64 and arm64 are pushed by the engine under their own tags, then published as one index under
/// candidate and 1.0; a pull by the engine must pick the image of the platform it asks for.
/// </summary>
[TestClass]
public sealed class ImageIndexPushTests
{
    private const string Password = "s3cret-Index-Pa55";
    private static readonly string Run = Guid.NewGuid().ToString("N")[..12];
    private static readonly string LocalName = $"makinastates/index-test-{Run}";
    private static DockerClient? s_docker;
    private static DockerEngine? s_engine;
    private static LocalRegistry? s_open;
    private static LocalRegistry? s_guarded;
    private static string? s_savedDockerConfig;
    private static string? s_emptyDockerConfig;

    /// <summary>arch → the loaded image's id (the sha256 of its config).</summary>
    private static readonly Dictionary<string, string> s_loaded = [];

    [ClassInitialize]
    public static async Task LoadImagesAndStartRegistries(TestContext _)
    {
        // The machine user's docker logins must not change what the task sends.
        s_savedDockerConfig = Environment.GetEnvironmentVariable("DOCKER_CONFIG");
        s_emptyDockerConfig = Directory.CreateTempSubdirectory("msimage-docker-config-").FullName;
        Environment.SetEnvironmentVariable("DOCKER_CONFIG", s_emptyDockerConfig);
        s_docker = await TestDocker.RequireEngineAsync();
        s_engine = await DockerEngine.ConnectAsync((string?)null, CancellationToken.None);
        foreach (var arch in new[] { "amd64", "arm64" })
        {
            s_loaded[arch] = RegistryApi.DigestOf(TinyImageArchive(arch).Config);
        }
        s_open = await LocalRegistry.StartAsync();
        s_guarded = await LocalRegistry.StartAsync("pusher", Password);
    }

    [ClassCleanup]
    public static async Task RemoveImagesAndRegistries()
    {
        Environment.SetEnvironmentVariable("DOCKER_CONFIG", s_savedDockerConfig);
        if (s_emptyDockerConfig is not null)
        {
            Directory.Delete(s_emptyDockerConfig, recursive: true);
        }
        s_open?.Dispose();
        s_guarded?.Dispose();
        if (s_docker is not null)
        {
            // By id: every name a test gave them (loaded, pushed, pulled) goes with them; the ids are this run's own.
            foreach (var id in s_loaded.Values)
            {
                await TestDocker.RemoveImageAsync(s_docker, id);
            }
            s_docker.Dispose();
        }
        s_engine?.Dispose();
    }

    [TestMethod]
    public async Task The_index_lists_both_platforms_under_every_tag_and_a_pull_gets_each_platform_its_own_image()
    {
        var registry = s_open!;
        var repository = $"team/app-{Run}";
        var platformImages = await PushPlatformsAsync(registry, repository, new AuthConfig());

        var run = RunTask(registry.Address, repository, platformImages);
        Assert.IsTrue(run.Succeeded, run.Log + registry.Log);

        var name = $"{registry.Address}/{repository}";
        CollectionAssert.AreEquivalent(new[] { $"{name}:candidate", $"{name}:1.0" }, run.Outputs.Keys.ToArray());
        foreach (var tag in new[] { "candidate", "1.0" })
        {
            var (status, mediaType, digest, body) = await GetManifestAsync(registry, repository, tag);
            Assert.AreEqual(HttpStatusCode.OK, status, tag);
            Assert.AreEqual(RegistryApi.DockerManifestList, mediaType, tag);
            Assert.AreEqual(digest, RegistryApi.DigestOf(body));
            var output = run.Outputs[$"{name}:{tag}"];
            Assert.AreEqual(digest, output["Digest"], $"{tag}: the output names what the registry serves");
            Assert.AreEqual(registry.Address, output["Registry"]);
            Assert.AreEqual(repository, output["Repository"]);
            Assert.AreEqual(tag, output["Tag"]);
            Assert.AreEqual(RegistryApi.DockerManifestList, output["MediaType"]);
            Assert.AreEqual("linux/amd64;linux/arm64", output["Platforms"]);
            StringAssert.Contains(run.Log, $"Pushed {name}:{tag}@{digest} (image index: linux/amd64, linux/arm64)");

            var index = JsonNode.Parse(body)!;
            Assert.AreEqual(2, (int)index["schemaVersion"]!);
            var listed = index["manifests"]!.AsArray().Select(m => (
                Platform: $"{m!["platform"]!["os"]}/{m["platform"]!["architecture"]}", Digest: (string)m["digest"]!, MediaType: (string)m["mediaType"]!)).ToList();
            CollectionAssert.AreEqual(new[] { "linux/amd64", "linux/arm64" }, listed.Select(l => l.Platform).ToArray());
            foreach (var (platform, listedDigest, listedType) in listed)
            {
                Assert.AreEqual(platformImages.Single(p => p.Platform == platform).Digest, listedDigest, platform);
                Assert.AreEqual(RegistryApi.DockerManifest, listedType, platform);
            }
        }

        // The engine's own pull, with the local copies gone (the other tests load them again), picks by platform.
        foreach (var id in s_loaded.Values)
        {
            await s_docker!.Images.DeleteImageAsync(id, new ImageDeleteParameters { Force = true });
        }
        await s_docker!.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = name, Tag = "candidate", Platform = "linux/arm64" }, null, new Progress<JSONMessage>());
        var arm = await s_docker.Images.InspectImageAsync($"{name}:candidate");
        Assert.AreEqual("arm64", arm.Architecture, "pulled for linux/arm64");
        Assert.AreEqual(s_loaded["arm64"], arm.ID, "pulled for linux/arm64");
        await s_docker.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = name, Tag = "candidate" }, null, new Progress<JSONMessage>());
        var native = await s_docker.Images.InspectImageAsync($"{name}:candidate");
        Assert.AreEqual("amd64", native.Architecture, "pulled for the engine's own platform (amd64 here)");
        Assert.AreEqual(s_loaded["amd64"], native.ID, "pulled for the engine's own platform (amd64 here)");
    }

    [TestMethod]
    public async Task An_htpasswd_registry_refuses_the_index_without_credentials_and_takes_it_with_them()
    {
        var registry = s_guarded!;
        var repository = $"team/guarded-{Run}";
        var platformImages = await PushPlatformsAsync(registry, repository,
            new AuthConfig { Username = registry.Username, Password = registry.Password, ServerAddress = registry.Address });

        var refused = RunTask(registry.Address, repository, platformImages);
        Assert.IsFalse(refused.Succeeded, refused.Log);
        CollectionAssert.AreEqual(new[] { "MSI4003" }, refused.Errors.ToArray(), refused.Log);
        StringAssert.Contains(refused.Log, $"refused to let anonymous (no credentials for this registry) publish the image index {registry.Address}/{repository}:candidate");
        StringAssert.Contains(refused.Log, "401 Unauthorized (the registry asks for Basic authentication and no credentials were given)");
        foreach (var tag in new[] { "candidate", "1.0" })
        {
            Assert.AreEqual(HttpStatusCode.NotFound, (await GetManifestAsync(registry, repository, tag)).Status, $"{tag} was put without credentials");
        }

        var run = RunTask(registry.Address, repository, platformImages, username: "pusher", password: Password);
        Assert.IsTrue(run.Succeeded, run.Log + registry.Log);
        Assert.IsFalse(run.Log.Contains(Password, StringComparison.Ordinal), "the password is never logged");
        Assert.AreEqual(2, run.Outputs.Count);
        foreach (var output in run.Outputs.Values)
        {
            var (status, mediaType, digest, _) = await GetManifestAsync(registry, repository, output["Tag"]);
            Assert.AreEqual(HttpStatusCode.OK, status);
            Assert.AreEqual(RegistryApi.DockerManifestList, mediaType);
            Assert.AreEqual(digest, output["Digest"]);
        }
    }

    [TestMethod]
    public async Task Bad_input_and_unknown_manifests_fail_coded_before_anything_is_put()
    {
        var registry = s_open!;
        var repository = $"team/bad-{Run}";
        var name = $"{registry.Address}/{repository}";
        var platformImages = await PushPlatformsAsync(registry, repository, new AuthConfig());
        var (amd64, arm64) = (platformImages[0], platformImages[1]);

        var noDigest = RunTask(registry.Address, repository, [amd64, arm64 with { Digest = null }]);
        CollectionAssert.AreEqual(new[] { "MSI4001" }, noDigest.Errors.ToArray(), noDigest.Log);
        StringAssert.Contains(noDigest.Log, $"The platform image '{name}:candidate-arm64' cannot go into the image index {name}: it has no Digest");

        var badPlatform = RunTask(registry.Address, repository, [amd64, arm64 with { Platform = "linux/sparc" }]);
        CollectionAssert.AreEqual(new[] { "MSI4001" }, badPlatform.Errors.ToArray(), badPlatform.Log);
        StringAssert.Contains(badPlatform.Log, "its Platform 'linux/sparc' is not one of");

        var twice = RunTask(registry.Address, repository, [amd64, arm64 with { Platform = "linux/amd64" }]);
        CollectionAssert.AreEqual(new[] { "MSI4001" }, twice.Errors.ToArray(), twice.Log);
        StringAssert.Contains(twice.Log, "linux/amd64 is given more than once");

        const string unknown = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        var missing = RunTask(registry.Address, repository, [amd64, arm64 with { Digest = unknown }]);
        CollectionAssert.AreEqual(new[] { "MSI4005" }, missing.Errors.ToArray(), missing.Log);
        StringAssert.Contains(missing.Log, $"The registry {registry.Address} has no manifest {unknown} in {name} (platform linux/arm64, pushed as {name}:candidate-arm64)");

        foreach (var tag in new[] { "candidate", "1.0" })
        {
            Assert.AreEqual(HttpStatusCode.NotFound, (await GetManifestAsync(registry, repository, tag)).Status, $"{tag} was put from bad input");
        }

        var nowhere = $"127.0.0.1:{TestDocker.FreeLoopbackPort()}";
        var unreachable = RunTask(nowhere, repository, platformImages.Select(p => p with { Reference = p.Reference.Replace(registry.Address, nowhere) }));
        CollectionAssert.AreEqual(new[] { "MSI4002" }, unreachable.Errors.ToArray(), unreachable.Log);
        StringAssert.Contains(unreachable.Log, $"The registry {nowhere} could not be reached from this machine");
    }

    /// <summary>A pushed per-platform image, as a PlatformImages item says it (Digest null: the item has none).</summary>
    private sealed record PlatformImage(string Reference, string? Digest, string Platform);

    /// <summary>What the task returned and logged (without MSBuild types: see <see cref="RecordingBuildEngine"/>).</summary>
    private sealed record TaskRun(bool Succeeded, string Log, IReadOnlyList<string> Errors, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> Outputs);

    private static TaskRun RunTask(string registry, string repository, IEnumerable<PlatformImage> platformImages, string username = "", string password = "")
    {
        var (engine, record) = RecordingBuildEngine.Create();
        var task = new PushImageIndex
        {
            BuildEngine = engine,
            Registry = registry,
            Repository = repository,
            Tags = [new TaskItem("candidate"), new TaskItem("1.0")],
            PlatformImages = [.. platformImages.Select(p => new TaskItem(p.Reference, p.Digest is null
                ? new Dictionary<string, string> { ["Platform"] = p.Platform }
                : new Dictionary<string, string> { ["Digest"] = p.Digest, ["Platform"] = p.Platform }))],
            MsRegistryUsername = username,
            MsRegistryPassword = password,
        };
        var succeeded = task.Execute();
        var outputs = task.PushedIndexes.ToDictionary(i => i.ItemSpec, i => (IReadOnlyDictionary<string, string>)
            new[] { "Digest", "Registry", "Repository", "Tag", "MediaType", "Platforms" }.ToDictionary(m => m, i.GetMetadata));
        return new TaskRun(succeeded, record.Log, [.. record.Errors.Select(e => e.Code)], outputs);
    }

    /// <summary>Loads the tiny images a test (or a failed one) removed.</summary>
    private static async Task LoadMissingImagesAsync()
    {
        foreach (var (arch, id) in s_loaded)
        {
            if (await TestDocker.ImageIdAsync(s_docker!, id) is null)
            {
                await s_docker!.Images.LoadImageAsync(new ImageLoadParameters { Quiet = true }, new MemoryStream(TinyImageArchive(arch).Archive), new Progress<JSONMessage>());
                Assert.AreEqual(id, await TestDocker.ImageIdAsync(s_docker, $"{LocalName}:{arch}"), "the loaded image's id is its config's digest");
            }
        }
    }

    /// <summary>Each loaded image pushed by the engine as &lt;registry&gt;/&lt;repository&gt;:candidate-&lt;arch&gt;, as a multi-platform build pushes them.</summary>
    private static async Task<PlatformImage[]> PushPlatformsAsync(LocalRegistry registry, string repository, AuthConfig auth)
    {
        await LoadMissingImagesAsync();
        var name = $"{registry.Address}/{repository}";
        var items = new List<PlatformImage>();
        foreach (var (arch, id) in s_loaded)
        {
            var tag = $"candidate-{arch}";
            await s_docker!.Images.TagImageAsync(id, new ImageTagParameters { RepositoryName = name, Tag = tag });
            try
            {
                var digest = await RegistryPush.PushAsync(s_engine!, registry.Address, name, tag, auth, "test", _ => { }, CancellationToken.None);
                items.Add(new PlatformImage($"{name}:{tag}", digest, $"linux/{arch}"));
            }
            finally
            {
                await TestDocker.RemoveImageAsync(s_docker, $"{name}:{tag}");
            }
        }
        return [.. items];
    }

    /// <summary>The registry's own answer to a client that accepts every manifest kind (with the registry's user, if any).</summary>
    private static async Task<(HttpStatusCode Status, string? MediaType, string? Digest, byte[] Body)> GetManifestAsync(LocalRegistry registry, string repository, string tag)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{registry.Address}/v2/{repository}/manifests/{tag}");
        foreach (var type in new[] { RegistryApi.DockerManifestList, RegistryApi.OciIndex, RegistryApi.DockerManifest, RegistryApi.OciManifest })
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(type));
        }
        if (registry.Username is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{registry.Username}:{registry.Password}")));
        }
        using var response = await http.SendAsync(request);
        var digest = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
        return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, digest, await response.Content.ReadAsByteArrayAsync());
    }

    /// <summary>
    /// A `docker save` archive of a one-layer image whose config says linux/&lt;arch&gt; and whose one file says the same
    /// (the run's label makes its id this run's own).
    /// </summary>
    private static (byte[] Archive, byte[] Config) TinyImageArchive(string arch)
    {
        var layer = Tar(("arch", Encoding.UTF8.GetBytes($"{arch}\n")));
        var config = JsonSerializer.SerializeToUtf8Bytes(new JsonObject
        {
            ["architecture"] = arch,
            ["os"] = "linux",
            ["created"] = "2026-01-01T00:00:00Z",
            ["config"] = new JsonObject { ["Cmd"] = new JsonArray("/arch"), ["Labels"] = new JsonObject { ["io.makinastates.test.run"] = Run } },
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray(RegistryApi.DigestOf(layer)) },
            ["history"] = new JsonArray(new JsonObject { ["created"] = "2026-01-01T00:00:00Z", ["created_by"] = "ImageIndexPushTests" }),
        });
        var configName = Convert.ToHexStringLower(SHA256.HashData(config)) + ".json";
        var manifest = JsonSerializer.SerializeToUtf8Bytes(new JsonArray(new JsonObject
        {
            ["Config"] = configName,
            ["RepoTags"] = new JsonArray($"{LocalName}:{arch}"),
            ["Layers"] = new JsonArray("layer/layer.tar"),
        }));
        return (Tar(("manifest.json", manifest), (configName, config), ("layer/layer.tar", layer)), config);
    }

    private static byte[] Tar(params (string Name, byte[] Content)[] files)
    {
        using var buffer = new MemoryStream();
        using (var tar = new TarWriter(buffer, TarEntryFormat.Ustar, leaveOpen: true))
        {
            foreach (var (name, content) in files)
            {
                tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name)
                {
                    DataStream = new MemoryStream(content),
                    Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
                    ModificationTime = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero),
                });
            }
        }
        return buffer.ToArray();
    }
}
