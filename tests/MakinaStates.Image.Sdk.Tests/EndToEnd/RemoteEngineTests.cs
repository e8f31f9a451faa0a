using System.Security.Cryptography;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// Builds through a second engine that shares no files with the build: its own dockerd, TLS only, on 127.0.0.1.
/// The data dir and the injected tree must be uploaded; the candidate must end up there and not on the local engine.
/// </summary>
[TestClass]
public sealed class RemoteEngineTests
{
    private const string SampleImage = "makinastates/hello-systemd";
    private static TlsDockerEngine? s_engine;
    private static DotnetBuild? s_sample;

    private static TlsDockerEngine Engine => s_engine ?? throw new InvalidOperationException("no second engine");

    [ClassInitialize]
    public static async Task StartEngineAndBuildTheSample(TestContext _)
    {
        Repository.RequirePackedSdk();
        using (await TestDocker.RequireEngineAsync())
        {
        }
        s_engine = await TlsDockerEngine.StartAsync();
        // The README's sample, unchanged, pointed at the TLS engine with the three properties.
        s_sample = await DotnetBuild.RunAsync(Path.Combine(Repository.Root, "samples", "hello-systemd", "hello-systemd.proj"),
            [$"-p:MsDockerHost={Engine.Host}", $"-p:MsDockerCertPath={Engine.ClientCertificates}", "-p:MsDockerTlsVerify=true"]);
    }

    [ClassCleanup]
    public static async Task StopEngine()
    {
        if (s_engine is not null)
        {
            await s_engine.DisposeAsync();
        }
    }

    [TestMethod]
    public async Task The_sample_builds_through_a_TLS_engine_and_its_candidate_is_there_not_on_the_local_engine()
    {
        var build = s_sample!;
        Assert.IsTrue(build.Succeeded, build.Output + Engine.Log);
        StringAssert.Contains(build.Output, $"Engine: {Engine.Host} over TLS, engine verified against {Engine.ClientCertificates}/ca.pem (from MsDockerHost)");
        StringAssert.Contains(build.Output, "not on this machine, so the data dir and the injected tree are uploaded");
        StringAssert.Contains(build.Output, $"Check image tag: {SampleImage}:candidate");

        using var remote = await Engine.ConnectAsync();
        var candidate = await remote.Client.Images.InspectImageAsync($"{SampleImage}:candidate");
        using var local = await TestDocker.RequireEngineAsync();
        Assert.IsNull(await TestDocker.ImageIdAsync(local, candidate.ID), "the remote build's image is on the local engine");

        // Nothing of the build is left on the remote engine: containers, the data volume.
        await TestDocker.AssertNoStageContainerAsync(remote.Client, SampleImage);
        var volumes = await remote.Client.Volumes.ListAsync(CancellationToken.None);
        Assert.IsFalse(volumes.Volumes?.Any(v => v.Name.StartsWith("makinastates-data-", StringComparison.Ordinal)) ?? false,
            string.Join(", ", volumes.Volumes?.Select(v => v.Name) ?? []));

        // It boots there and serves the page, like the candidate of a local build.
        var container = await TestDocker.BootAsync(remote.Client, $"{SampleImage}:candidate", $"remote-hello-{Guid.NewGuid():N}");
        try
        {
            var (state, _) = await TestDocker.ExecAsync(remote.Client, container, "systemctl is-system-running | grep -qE 'running|degraded'");
            Assert.AreEqual(0L, state);
            var (_, page) = await TestDocker.ExecAsync(remote.Client, container,
                "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3");
            StringAssert.Contains(page, "200");
        }
        finally
        {
            await TestDocker.RemoveContainerAsync(remote.Client, container);
        }
    }

    [TestMethod]
    public async Task The_data_dir_reaches_the_stages_through_an_uploaded_volume_writable_in_stage3_chosen_by_the_docker_environment()
    {
        Assert.IsTrue(s_sample!.Succeeded, "the sample build made the shared base tarball");
        using var project = new ImageProject("makinastates/remote-data-test");
        var dataDirectory = Path.Combine(project.Directory, "data");
        Directory.CreateDirectory(dataDirectory);
        // The base tarball the sample build used (its settings report names it): copied, so no debootstrap here.
        var sharedBase = System.Text.RegularExpressions.Regex.Match(s_sample.Output, @"MS_BASEIMAGE\s+(\S+)").Groups[1].Value;
        File.Copy(sharedBase, Path.Combine(dataDirectory, "baseimage-debian-bookworm.tar.xz"));
        File.WriteAllText(Path.Combine(dataDirectory, "probe.txt"), "data for the stages\n");
        Directory.CreateDirectory(Path.Combine(dataDirectory, "nested"));
        File.WriteAllText(Path.Combine(dataDirectory, "nested", "deeper.txt"), "nested too\n");
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            set -e
            echo "probe: $(cat /docker/data/probe.txt) / $(cat /docker/data/nested/deeper.txt)"
            # Writable as in the seed; what is written stays in this build's volume.
            echo written > /docker/data/written
            grep -qE 'volumes/makinastates-data-[0-9a-f]+/_data /run/makinastates/data rw' /proc/self/mountinfo && echo "data from a volume"
            test ! -e /docker/data/locks && test ! -e /docker/data/baseimage-debian-bookworm.tar.xz && echo "sdk files not uploaded"
            """, executable: true);

        try
        {
            // DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, as for the docker CLI.
            var build = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={dataDirectory}"], new Dictionary<string, string?>
            {
                ["DOCKER_HOST"] = Engine.Host,
                ["DOCKER_TLS_VERIFY"] = "1",
                ["DOCKER_CERT_PATH"] = Engine.ClientCertificates,
            });
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, "(from DOCKER_HOST)");
            StringAssert.Contains(build.Output, "probe: data for the stages / nested too");
            StringAssert.Contains(build.Output, "data from a volume");
            StringAssert.Contains(build.Output, "sdk files not uploaded");
            StringAssert.Contains(build.Output, "was uploaded to volume makinastates-data-");
            Assert.IsFalse(File.Exists(Path.Combine(dataDirectory, "written")), "a remote engine's writes stay in its volume");

            using var remote = await Engine.ConnectAsync();
            Assert.IsNull(await TestDocker.ReadFileFromImageAsync(remote.Client, "makinastates/remote-data-test:candidate", "/docker"), "/docker was committed");
            var volumes = await remote.Client.Volumes.ListAsync(CancellationToken.None);
            Assert.IsFalse(volumes.Volumes?.Any(v => v.Name.StartsWith("makinastates-data-", StringComparison.Ordinal)) ?? false);
        }
        finally
        {
            using var remote = await Engine.ConnectAsync();
            await TestDocker.RemoveProjectImagesAsync(remote.Client, "makinastates/remote-data-test");
        }
    }

    [TestMethod]
    public async Task A_docker_context_selects_the_engine_with_its_own_TLS_files()
    {
        using var project = new ImageProject("makinastates/remote-context-test");
        var config = Path.Combine(project.Directory, "docker-config");
        const string name = "msimage-remote";
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        Directory.CreateDirectory(Path.Combine(config, "contexts", "meta", id));
        File.WriteAllText(Path.Combine(config, "contexts", "meta", id, "meta.json"),
            System.Text.Json.JsonSerializer.Serialize(new
            {
                Name = name,
                Metadata = new { },
                Endpoints = new { docker = new { Host = Engine.Host, SkipTLSVerify = false } },
            }));
        var tls = Directory.CreateDirectory(Path.Combine(config, "contexts", "tls", id, "docker")).FullName;
        foreach (var file in new[] { "ca.pem", "cert.pem", "key.pem" })
        {
            File.Copy(Path.Combine(Engine.ClientCertificates, file), Path.Combine(tls, file));
        }
        File.WriteAllText(Path.Combine(config, "config.json"), $$"""{"auths":{},"currentContext":"{{name}}"}""");

        // Stage0 connects, names the engine and lays out the build: enough to prove which engine was chosen.
        var current = await DotnetBuild.RunAsync(project.ProjectFile, ["-t:MsStage0"], new Dictionary<string, string?> { ["DOCKER_CONFIG"] = config });
        Assert.IsTrue(current.Succeeded, current.Output);
        StringAssert.Contains(current.Output, $"Engine: {Engine.Host} over TLS, engine verified against {tls}/ca.pem (from docker context '{name}' ({config}/config.json))");

        // DOCKER_CONTEXT names one that does not exist: a clear error, not a silent fallback to the local engine.
        var missing = await DotnetBuild.RunAsync(project.ProjectFile, ["-t:MsStage0"],
            new Dictionary<string, string?> { ["DOCKER_CONFIG"] = config, ["DOCKER_CONTEXT"] = "no-such-context" });
        Assert.IsFalse(missing.Succeeded);
        StringAssert.Contains(missing.Output, "error MSI0107");
        StringAssert.Contains(missing.Output, "The docker context 'no-such-context' (from DOCKER_CONTEXT) does not exist");

        // MsDockerHost wins over the context, even over one that does not exist.
        var local = await DotnetBuild.RunAsync(project.ProjectFile, ["-t:MsStage0", "-p:MsDockerHost=unix:///var/run/docker.sock"],
            new Dictionary<string, string?> { ["DOCKER_CONFIG"] = config, ["DOCKER_CONTEXT"] = "no-such-context" });
        Assert.IsTrue(local.Succeeded, local.Output);
        StringAssert.Contains(local.Output, "Engine: unix:///var/run/docker.sock (from MsDockerHost)");
    }

    [TestMethod]
    public async Task A_wrong_CA_fails_with_a_TLS_error_and_leaves_nothing()
    {
        using var project = new ImageProject("makinastates/remote-wrong-ca-test");
        var wrong = Directory.CreateDirectory(Path.Combine(project.Directory, "wrong-certs")).FullName;
        var otherCa = TlsDockerEngine.MakeAuthority(project.Directory, "other-ca", "not-the-engines-ca");
        File.Copy(Path.Combine(otherCa, "ca.pem"), Path.Combine(wrong, "ca.pem"));
        File.Copy(Path.Combine(Engine.ClientCertificates, "cert.pem"), Path.Combine(wrong, "cert.pem"));
        File.Copy(Path.Combine(Engine.ClientCertificates, "key.pem"), Path.Combine(wrong, "key.pem"));

        var build = await project.BuildAsync($"-p:MsDockerHost={Engine.Host}", $"-p:MsDockerCertPath={wrong}", "-p:MsDockerTlsVerify=true");
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0105");
        StringAssert.Contains(build.Output, $"The TLS handshake with the Docker engine at {Engine.Host}");
        StringAssert.Contains(build.Output, $"signed by the ca.pem in {wrong}");
        Assert.IsNull(build.BuildId, "no build started");

        // A ca.pem bundle holding the engine's CA among others is trusted, as by docker.
        var bundle = Directory.CreateDirectory(Path.Combine(project.Directory, "bundle")).FullName;
        File.WriteAllText(Path.Combine(bundle, "ca.pem"), File.ReadAllText(Path.Combine(otherCa, "ca.pem")) + File.ReadAllText(Path.Combine(Engine.ClientCertificates, "ca.pem")));
        File.Copy(Path.Combine(Engine.ClientCertificates, "cert.pem"), Path.Combine(bundle, "cert.pem"));
        File.Copy(Path.Combine(Engine.ClientCertificates, "key.pem"), Path.Combine(bundle, "key.pem"));
        var bundled = await project.BuildAsync("-t:MsStage0", $"-p:MsDockerHost={Engine.Host}", $"-p:MsDockerCertPath={bundle}", "-p:MsDockerTlsVerify=true");
        Assert.IsTrue(bundled.Succeeded, bundled.Output);

        var missing = Directory.CreateDirectory(Path.Combine(project.Directory, "no-certs")).FullName;
        var noFiles = await project.BuildAsync($"-p:MsDockerHost={Engine.Host}", $"-p:MsDockerCertPath={missing}", "-p:MsDockerTlsVerify=true");
        Assert.IsFalse(noFiles.Succeeded);
        StringAssert.Contains(noFiles.Output, "error MSI0106");
        StringAssert.Contains(noFiles.Output, Path.Combine(missing, "ca.pem"));

        // The right CA, but an address the engine's certificate does not name: refused, as docker --tlsverify does.
        var unnamed = await project.BuildAsync($"-p:MsDockerHost={Engine.UnnamedHost}", $"-p:MsDockerCertPath={Engine.ClientCertificates}", "-p:MsDockerTlsVerify=true");
        Assert.IsFalse(unnamed.Succeeded);
        StringAssert.Contains(unnamed.Output, "error MSI0105");
        StringAssert.Contains(unnamed.Output, "does not name the host connected to");

        // Without TLS the engine refuses to talk: the error names the engine and says it did not answer.
        var plain = await project.BuildAsync($"-p:MsDockerHost={Engine.Host}");
        Assert.IsFalse(plain.Succeeded);
        StringAssert.Contains(plain.Output, "error MSI0101");
        StringAssert.Contains(plain.Output, $"The Docker engine at {Engine.Host} (from MsDockerHost) did not answer");

        using var remote = await Engine.ConnectAsync();
        Assert.IsNull(await TestDocker.ImageIdAsync(remote.Client, "makinastates/remote-wrong-ca-test:candidate"));
        Assert.AreEqual(0, (await remote.Client.Containers.ListContainersAsync(new ContainersListParameters { All = true })).Count);
    }

    [TestMethod]
    public async Task A_socket_whose_engine_does_not_see_the_data_dir_is_MSI0108_and_MsDockerRemote_uploads_instead()
    {
        // The build runs in its own mount namespace where the data dir is a tmpfs: the local engine cannot see it, as
        // when a CI job container is given the host's socket.
        var image = $"makinastates/test-forwarded-socket-{Guid.NewGuid():N}"[..48];
        using var project = new ImageProject(image);
        var hidden = Directory.CreateDirectory(Path.Combine(project.Directory, "hidden")).FullName;
        var sharedBase = System.Text.RegularExpressions.Regex.Match(s_sample!.Output, @"MS_BASEIMAGE\s+(\S+)").Groups[1].Value;
        Assert.IsTrue(File.Exists(sharedBase), s_sample.Output);
        string[] launcher = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
            "mount -t tmpfs tmpfs \"$0\" && mkdir \"$0/data\" && cp \"$1\" \"$0/data/\" && echo only-in-the-namespace > \"$0/data/probe.txt\" && shift && exec \"$@\"",
            hidden, sharedBase];
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", "#!/bin/bash\necho \"probe: $(cat /docker/data/probe.txt)\"\n", executable: true);
        using var local = await TestDocker.RequireEngineAsync();
        try
        {
            var refused = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={hidden}/data"], launcher: launcher);
            Assert.IsFalse(refused.Succeeded, refused.Output);
            StringAssert.Contains(refused.Output, "error MSI0108");
            StringAssert.Contains(refused.Output, "bind source path does not exist");
            StringAssert.Contains(refused.Output, "Set MsDockerRemote=true");
            await TestDocker.AssertNoStageContainerAsync(local, image);

            // Worse: the engine's machine has a folder of the same name. It would be mounted silently; the marker tells.
            Directory.CreateDirectory(Path.Combine(hidden, "data"));
            var foreign = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={hidden}/data"], launcher: launcher);
            Assert.IsFalse(foreign.Succeeded, foreign.Output);
            StringAssert.Contains(foreign.Output, "error MSI0108");
            StringAssert.Contains(foreign.Output, "is not this machine's");
            await TestDocker.AssertNoStageContainerAsync(local, image);

            var uploaded = await DotnetBuild.RunAsync(project.ProjectFile, [$"-p:MsDataDir={hidden}/data", "-p:MsDockerRemote=true"], launcher: launcher);
            Assert.IsTrue(uploaded.Succeeded, uploaded.Output);
            StringAssert.Contains(uploaded.Output, "not on this machine, so the data dir and the injected tree are uploaded");
            StringAssert.Contains(uploaded.Output, "probe: only-in-the-namespace");
            Assert.IsNotNull(uploaded.BuildId, "Stage0 printed no build id, so the data volume's name is unknown");
            var volumes = await local.Volumes.ListAsync(CancellationToken.None);
            Assert.IsFalse(volumes.Volumes?.Any(v => v.Name == DataVolume.Name(uploaded.BuildId)) ?? false, "the data volume was left");
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(local, image);
        }
    }
}
