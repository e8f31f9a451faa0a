using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MsPush=true against Debian's docker-registry on 127.0.0.1, once open and once behind htpasswd: the registry's own
/// HTTP API must serve the returned digest, and the pushed image must come back by pull and boot.
/// </summary>
[TestClass]
public sealed partial class RegistryPushTests
{
    private const string Image = "makinastates/push-test";
    private const string Password = "s3cret-Pa55-do-not-log";
    private static LocalRegistry? s_open;
    private static LocalRegistry? s_guarded;
    private static ImageProject? s_project;
    private static DockerClient? s_docker;

    [GeneratedRegex(@"MsPushedImage: (?<reference>\S+):(?<tag>[A-Za-z0-9_.-]+) Digest=(?<digest>sha256:[0-9a-f]{64})")]
    private static partial Regex PushedItem();

    private static string? s_savedDockerConfig;
    private static string? s_emptyDockerConfig;

    [ClassInitialize]
    public static async Task StartRegistries(TestContext _)
    {
        Repository.RequirePackedSdk();
        // The machine user's own docker config (logins, a credential store) must not change what these builds do.
        s_savedDockerConfig = Environment.GetEnvironmentVariable("DOCKER_CONFIG");
        s_emptyDockerConfig = Directory.CreateTempSubdirectory("msimage-docker-config-").FullName;
        Environment.SetEnvironmentVariable("DOCKER_CONFIG", s_emptyDockerConfig);
        s_docker = await TestDocker.RequireEngineAsync();
        s_open = await LocalRegistry.StartAsync();
        s_guarded = await LocalRegistry.StartAsync("pusher", Password);
        // Tags as items in the project; the command line can add more with -p:MsImageTags.
        s_project = new ImageProject(Image, """
            <ItemGroup>
              <MsImageTags Include="1.2.3" />
            </ItemGroup>
            <!-- What a project consuming the push sees: the returned items and their Digest metadata. -->
            <Target Name="ShowPushedImages" AfterTargets="Build">
              <Message Importance="high" Text="MsPushedImage: %(MsPushedImage.Identity) Digest=%(MsPushedImage.Digest)" Condition="'@(MsPushedImage)' != ''" />
            </Target>
            """);
    }

    [ClassCleanup]
    public static async Task StopRegistries()
    {
        Environment.SetEnvironmentVariable("DOCKER_CONFIG", s_savedDockerConfig);
        if (s_emptyDockerConfig is not null)
        {
            Directory.Delete(s_emptyDockerConfig, recursive: true);
        }
        s_open?.Dispose();
        s_guarded?.Dispose();
        s_project?.Dispose();
        if (s_docker is not null)
        {
            await TestDocker.RemoveProjectImagesAsync(s_docker, Image);
            foreach (var registry in new[] { s_open, s_guarded }.OfType<LocalRegistry>())
            {
                // Only the pull of the first test leaves a registry name on the engine.
                await TestDocker.RemoveImageAsync(s_docker, $"{registry.Address}/{Image}:1.2.3");
            }
            await TestDocker.RemoveImageAsync(s_docker, "makinastates/pulled-back:test");
            s_docker.Dispose();
        }
    }

    private static ImageProject Project => s_project!;

    /// <summary>The MsPushedImage items the build returned (reference → Digest metadata).</summary>
    private static Dictionary<string, string> Pushed(DotnetBuild build) =>
        PushedItem().Matches(build.Output).ToDictionary(m => $"{m.Groups["reference"].Value}:{m.Groups["tag"].Value}", m => m.Groups["digest"].Value);

    [TestMethod]
    public async Task The_candidate_and_its_tags_are_pushed_the_registry_serves_the_returned_digest_and_a_pull_boots()
    {
        var registry = s_open!;
        // The project's tag, and two more from the command line (';' escaped, as MSBuild wants it in -p:).
        var build = await Project.BuildAsync("-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=latest%3Bedge");
        Assert.IsTrue(build.Succeeded, build.Output + registry.Log);
        StringAssert.Contains(build.Output, "pushed by anonymous (no credentials for this registry)");
        var pushed = Pushed(build);
        CollectionAssert.AreEquivalent(new[] { "candidate", "1.2.3", "latest", "edge" }.Select(t => $"{registry.Address}/{Image}:{t}").ToArray(), pushed.Keys.ToArray());
        foreach (var reference in pushed.Keys)
        {
            StringAssert.Contains(build.Output, $"Pushed {reference}@{pushed[reference]}");
            Assert.IsNull(await TestDocker.ImageIdAsync(s_docker!, reference), $"{reference}: the registry's name is not kept on the engine");
        }

        foreach (var (reference, digest) in pushed)
        {
            var tag = reference[(reference.LastIndexOf(':') + 1)..];
            var (status, served, body) = await registry.GetManifestAsync(Image, tag);
            Assert.AreEqual(System.Net.HttpStatusCode.OK, status, reference);
            Assert.AreEqual(digest, served, $"{reference}: the registry serves another manifest");
            Assert.AreEqual(digest, "sha256:" + Convert.ToHexStringLower(SHA256.HashData(body)), "the digest is the manifest's own hash");
        }
        Assert.AreEqual(1, pushed.Values.Distinct().Count(), "the tags promote the same image");

        // A registry name that already named another image on this engine (say one pulled for a deploy) names it again
        // after the push; the registry gets the candidate.
        var other = (await s_docker!.Images.InspectImageAsync($"{Image}-stage1:latest")).ID;
        await s_docker.Images.TagImageAsync(other, new ImageTagParameters { RepositoryName = $"{registry.Address}/{Image}", Tag = "edge" });
        var again = await Project.BuildAsync("-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=edge");
        Assert.IsTrue(again.Succeeded, again.Output);
        Assert.AreEqual(other, await TestDocker.ImageIdAsync(s_docker, $"{registry.Address}/{Image}:edge"), "the engine's own name was taken");
        Assert.AreEqual(pushed[$"{registry.Address}/{Image}:edge"], (await registry.GetManifestAsync(Image, "edge")).Digest);
        await TestDocker.RemoveImageAsync(s_docker, $"{registry.Address}/{Image}:edge");

        // Pull it back under another name, with the local copy gone, and boot it.
        var candidateId = (await s_docker!.Images.InspectImageAsync($"{Image}:candidate")).ID;
        await s_docker.Images.DeleteImageAsync(candidateId, new ImageDeleteParameters { Force = true });
        Assert.IsNull(await TestDocker.ImageIdAsync(s_docker, candidateId));
        await s_docker.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = $"{registry.Address}/{Image}", Tag = "1.2.3" }, null, new Progress<JSONMessage>());
        await s_docker.Images.TagImageAsync($"{registry.Address}/{Image}:1.2.3", new ImageTagParameters { RepositoryName = "makinastates/pulled-back", Tag = "test" });
        var container = await TestDocker.BootAsync(s_docker, "makinastates/pulled-back:test", $"pulled-back-{Guid.NewGuid():N}");
        try
        {
            var (state, output) = await TestDocker.ExecAsync(s_docker, container, "systemctl is-system-running");
            Assert.IsTrue(output.Trim() is "running" or "degraded", output);
        }
        finally
        {
            await TestDocker.RemoveContainerAsync(s_docker, container);
        }
    }

    [TestMethod]
    public async Task An_htpasswd_registry_takes_the_properties_or_the_docker_config_and_refuses_missing_or_wrong_credentials()
    {
        var registry = s_guarded!;
        var isolated = new Dictionary<string, string?> { ["DOCKER_CONFIG"] = Path.Combine(Project.Directory, "no-docker-config") };

        var anonymous = await Project.BuildAsync("-p:MsPush=true", $"-p:MsRegistry={registry.Address}");
        Assert.IsFalse(anonymous.Succeeded);
        StringAssert.Contains(anonymous.Output, "error MSI4003");
        StringAssert.Contains(anonymous.Output, $"The registry {registry.Address} refused to let anonymous (no credentials for this registry) push {registry.Address}/{Image}:candidate");
        StringAssert.Contains(anonymous.Output, "no basic auth credentials");

        var wrong = await DotnetBuild.RunAsync(Project.ProjectFile, ["-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsRegistryUsername=pusher"],
            new Dictionary<string, string?>(isolated) { ["MS_REGISTRY_PASSWORD"] = "not-the-password" });
        Assert.IsFalse(wrong.Succeeded);
        StringAssert.Contains(wrong.Output, "error MSI4003");
        StringAssert.Contains(wrong.Output, "user 'pusher' (from MsRegistryUsername)");
        Assert.IsFalse(wrong.Output.Contains("not-the-password", StringComparison.Ordinal), "a password was logged");

        // The property, at the default (normal) verbosity: the password is handed to the engine, never logged.
        var right = await DotnetBuild.RunAsync(Project.ProjectFile,
            ["-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsRegistryUsername=pusher", $"-p:MsRegistryPassword={Password}"], isolated);
        Assert.IsTrue(right.Succeeded, right.Output + registry.Log);
        Assert.IsFalse(right.Output.Contains(Password, StringComparison.Ordinal), "a password was logged");
        var pushed = Pushed(right);
        var (status, served, _) = await registry.GetManifestAsync(Image, "1.2.3");
        Assert.AreEqual(System.Net.HttpStatusCode.OK, status);
        Assert.AreEqual(pushed[$"{registry.Address}/{Image}:1.2.3"], served);

        // MS_REGISTRY_PASSWORD never becomes an MSBuild property or task input: neither diagnostic verbosity (which
        // echoes the command line, properties and task inputs) nor a binary log holds it.
        var binaryLog = Path.Combine(Project.Directory, "push.binlog");
        var detailed = await DotnetBuild.RunAsync(Project.ProjectFile,
            ["-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsRegistryUsername=pusher", "-v:diag", $"-bl:{binaryLog}"],
            new Dictionary<string, string?>(isolated) { ["MS_REGISTRY_PASSWORD"] = Password });
        Assert.IsTrue(detailed.Succeeded, detailed.Output);
        StringAssert.Contains(detailed.Output, "Task Parameter:", "diagnostic verbosity was not in effect");
        Assert.IsFalse(detailed.Output.Contains(Password, StringComparison.Ordinal), "a password was logged");
        using (var inflated = new MemoryStream())
        {
            await using (var log = new System.IO.Compression.GZipStream(File.OpenRead(binaryLog), System.IO.Compression.CompressionMode.Decompress))
            {
                await log.CopyToAsync(inflated);
            }
            var content = inflated.ToArray();
            Assert.IsTrue(content.AsSpan().IndexOf("pusher"u8) >= 0, "the binary log was not readable as expected");
            Assert.IsTrue(content.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes(Password)) < 0, "the password is in the binary log");
        }

        // `docker login` leaves base64(user:password) in config.json auths: the push finds it there.
        var config = Directory.CreateDirectory(Path.Combine(Project.Directory, "docker-config")).FullName;
        File.WriteAllText(Path.Combine(config, "config.json"), System.Text.Json.JsonSerializer.Serialize(new
        {
            auths = new Dictionary<string, object> { [registry.Address] = new { auth = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"pusher:{Password}")) } },
        }));
        var fromConfig = await DotnetBuild.RunAsync(Project.ProjectFile, ["-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=from-config"],
            new Dictionary<string, string?> { ["DOCKER_CONFIG"] = config });
        Assert.IsTrue(fromConfig.Succeeded, fromConfig.Output);
        StringAssert.Contains(fromConfig.Output, $"user 'pusher' (from {config}/config.json)");
        Assert.AreEqual(System.Net.HttpStatusCode.OK, (await registry.GetManifestAsync(Image, "from-config")).Status);

        // `docker login` with a credential store keeps the secret in the helper, not in config.json.
        var helperConfig = Directory.CreateDirectory(Path.Combine(Project.Directory, "docker-config-helper")).FullName;
        var bin = Directory.CreateDirectory(Path.Combine(Project.Directory, "bin")).FullName;
        File.WriteAllText(Path.Combine(bin, "docker-credential-msimage-test"), $$"""
            #!/bin/sh
            read server
            [ "$server" = "{{registry.Address}}" ] || { echo "credentials not found in native keychain"; exit 1; }
            echo '{"ServerURL":"{{registry.Address}}","Username":"pusher","Secret":"{{Password}}"}'
            """.Replace("\r\n", "\n"));
        File.SetUnixFileMode(Path.Combine(bin, "docker-credential-msimage-test"), UnixFileMode.UserRead | UnixFileMode.UserExecute);
        File.WriteAllText(Path.Combine(helperConfig, "config.json"), System.Text.Json.JsonSerializer.Serialize(new
        {
            auths = new Dictionary<string, object> { [registry.Address] = new { } },
            credsStore = "msimage-test",
        }));
        var fromHelper = await DotnetBuild.RunAsync(Project.ProjectFile, ["-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=from-helper"],
            new Dictionary<string, string?> { ["DOCKER_CONFIG"] = helperConfig, ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" });
        Assert.IsTrue(fromHelper.Succeeded, fromHelper.Output);
        StringAssert.Contains(fromHelper.Output, "user 'pusher' (from credential helper docker-credential-msimage-test)");
        Assert.IsFalse(fromHelper.Output.Contains(Password, StringComparison.Ordinal), "a password was logged");
        Assert.AreEqual(System.Net.HttpStatusCode.OK, (await registry.GetManifestAsync(Image, "from-helper")).Status);
    }

    [TestMethod]
    public async Task Unreachable_registry_and_bad_push_settings_fail_clearly_and_push_nothing()
    {
        var closed = TestDocker.FreeLoopbackPort();
        var unreachable = await Project.BuildAsync("-p:MsPush=true", $"-p:MsRegistry=127.0.0.1:{closed}");
        Assert.IsFalse(unreachable.Succeeded);
        StringAssert.Contains(unreachable.Output, "error MSI4002");
        StringAssert.Contains(unreachable.Output, $"The registry 127.0.0.1:{closed} could not be reached");
        StringAssert.Contains(unreachable.Output, "connection refused");
        Assert.IsNotNull(await TestDocker.ImageIdAsync(s_docker!, $"{Image}:candidate"), "a failed push must leave the candidate");
        Assert.IsNull(await TestDocker.ImageIdAsync(s_docker!, $"127.0.0.1:{closed}/{Image}:candidate"), "a failed push leaves no registry tag behind");

        // MsImage names the registry itself: its candidate tag is the pushed name, and a failed push must keep it.
        var named = $"127.0.0.1:{closed}/makinastates/push-named-test";
        using (var inRegistry = new ImageProject(named))
        {
            try
            {
                var failed = await inRegistry.BuildAsync("-p:MsPush=true");
                Assert.IsFalse(failed.Succeeded);
                StringAssert.Contains(failed.Output, "error MSI4002");
                Assert.IsNotNull(await TestDocker.ImageIdAsync(s_docker!, $"{named}:candidate"), "the failed push took the candidate with it");
            }
            finally
            {
                await TestDocker.RemoveProjectImagesAsync(s_docker!, named);
            }
        }

        var registry = s_open!;
        var badTag = await Project.BuildAsync("-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=ok-tag%3B-bad:tag");
        Assert.IsFalse(badTag.Succeeded);
        StringAssert.Contains(badTag.Output, "error MSI4001");
        StringAssert.Contains(badTag.Output, "MsImageTags has '-bad:tag'");
        Assert.AreEqual(System.Net.HttpStatusCode.NotFound, (await registry.GetManifestAsync(Image, "ok-tag")).Status, "nothing is pushed when one tag is bad");

        var noRegistry = await Project.BuildAsync("-p:MsPush=true");
        Assert.IsFalse(noRegistry.Succeeded);
        StringAssert.Contains(noRegistry.Output, "error MSI4001");
        StringAssert.Contains(noRegistry.Output, "there is no registry to push makinastates/push-test to");
    }
}
