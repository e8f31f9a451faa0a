using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Docker.DotNet;
using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MsPlatforms=linux/amd64;linux/arm64 on this x86_64 host: arm64 runs under qemu-user-static (binfmt_misc, F flag),
/// as .ci/setup registers it. One build of both platforms is shared by the class (the arm64 base tarball, made once in
/// the data dir, is shared by every arm64 build of the run); the checks read the engine, the images and the registry.
/// </summary>
[TestClass]
public sealed partial class MultiPlatformTests
{
    private const string Image = "makinastates/multi-platform-test";
    private const string AclUser = "4321";
    private static ImageProject? s_project;
    private static DockerClient? s_docker;
    private static DotnetBuild? s_build;

    [GeneratedRegex(@"MsImageCandidate: (?<reference>\S+) Platform=(?<platform>\S+) ImageId=(?<id>sha256:[0-9a-f]{64})")]
    private static partial Regex CandidateItem();

    [GeneratedRegex(@"MsPushedImage: (?<reference>\S+) Platform=(?<platform>\S*) Digest=(?<digest>sha256:[0-9a-f]{64})")]
    private static partial Regex PushedItem();

    [ClassInitialize]
    public static async Task BuildBothPlatforms(TestContext _)
    {
        Repository.RequirePackedSdk();
        s_docker = await TestDocker.RequireEngineAsync();
        HostEmulation.RequireArm64();
        s_project = new ImageProject(Image, """
            <PropertyGroup>
              <MsPlatforms>linux/amd64;linux/arm64</MsPlatforms>
            </PropertyGroup>
            <ItemGroup>
              <ProjectReference Include="app/PlatformApp.csproj" TargetPath="/opt/app/" />
            </ItemGroup>
            <Target Name="ShowItems" AfterTargets="Build">
              <Message Importance="high" Text="MsImageCandidate: %(MsImageCandidate.Identity) Platform=%(MsImageCandidate.Platform) ImageId=%(MsImageCandidate.ImageId)" />
              <Message Importance="high" Text="MsPushedImage: %(MsPushedImage.Identity) Platform=%(MsPushedImage.Platform) Digest=%(MsPushedImage.Digest)" Condition="'@(MsPushedImage)' != ''" />
            </Target>
            """);
        s_project.Write("app/PlatformApp.csproj", """
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <InvariantGlobalization>true</InvariantGlobalization>
              </PropertyGroup>
            </Project>
            """);
        s_project.Write("app/Program.cs", """System.Console.WriteLine(System.Runtime.InteropServices.RuntimeInformation.OSArchitecture);""");
        var shared = s_project.Write("injected_volumes/srv/shared/report.txt", "one file, one ACL, on every platform\n");
        HostProcess.Run("setfacl", "-m", $"u:{AclUser}:rw", shared);
        s_build = await s_project.BuildAsync();
    }

    [ClassCleanup]
    public static async Task RemoveImages()
    {
        if (s_docker is not null)
        {
            foreach (var reference in new[] { $"{Image}:candidate", $"{Image}:candidate-arm64", $"{Image}-stage1:latest", $"{Image}-stage1:arm64" })
            {
                await TestDocker.RemoveImageAsync(s_docker, reference);
            }
            s_docker.Dispose();
        }
        s_project?.Dispose();
    }

    private static DockerClient Docker => s_docker!;

    private static DotnetBuild Build
    {
        get
        {
            Assert.IsNotNull(s_build);
            Assert.IsTrue(s_build.Succeeded, s_build.Output);
            return s_build;
        }
    }

    [TestMethod]
    public async Task Each_platform_has_its_own_candidate_stage1_and_base_with_its_architecture()
    {
        var candidates = CandidateItem().Matches(Build.Output).ToDictionary(m => m.Groups["reference"].Value, m => (Platform: m.Groups["platform"].Value, Id: m.Groups["id"].Value));
        Assert.AreEqual(2, candidates.Count, Build.Output);
        Assert.AreEqual("linux/amd64", candidates[$"{Image}:candidate"].Platform, "the engine's own platform keeps :candidate");
        Assert.AreEqual("linux/arm64", candidates[$"{Image}:candidate-arm64"].Platform);
        foreach (var (reference, expected) in new[] { ($"{Image}:candidate", "amd64"), ($"{Image}:candidate-arm64", "arm64"),
            ($"{Image}-stage1:latest", "amd64"), ($"{Image}-stage1:arm64", "arm64") })
        {
            var image = await Docker.Images.InspectImageAsync(reference);
            Assert.AreEqual(expected, image.Architecture, $"{reference} must say its real architecture (docker run --platform finds it)");
            Assert.AreEqual("linux", image.Os);
            if (candidates.TryGetValue(reference, out var item))
            {
                Assert.AreEqual(image.ID, item.Id, "the returned item names the image on the engine");
            }
        }
        StringAssert.Contains(Build.Output, "base baseimage-debian-bookworm-arm64.tar.xz", "the arm64 base has its own tarball");
        StringAssert.Contains(Build.Output, "Check image tags:");
    }

    [TestMethod]
    public async Task The_arm64_candidate_boots_systemd_under_emulation_with_the_injected_acls_and_its_app()
    {
        var container = await TestDocker.BootAsync(Docker, $"{Image}:candidate-arm64", $"multi-arm64-{Guid.NewGuid():N}");
        try
        {
            Assert.AreEqual("aarch64", (await TestDocker.ExecAsync(Docker, container, "uname -m")).Output.Trim());
            Assert.AreEqual("systemd", (await TestDocker.ExecAsync(Docker, container, "cat /proc/1/comm")).Output.Trim());
            var state = (await TestDocker.ExecAsync(Docker, container, "systemctl is-system-running")).Output.Trim();
            CollectionAssert.Contains(new[] { "running", "degraded" }, state);
            var failed = (await TestDocker.ExecAsync(Docker, container, "systemctl list-units --failed --plain --no-legend | awk '{print $1}'")).Output
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var unit in failed)
            {
                CollectionAssert.Contains(EmulatedPlatformUnits.FailingUnderEmulation.ToList(), unit, $"only the units listed as failing under emulation may fail ({state})");
            }
            StringAssert.Contains((await TestDocker.ExecAsync(Docker, container, "getfacl -cn /srv/shared/report.txt")).Output, $"user:{AclUser}:rw-");
            Assert.AreEqual("", await TestDocker.ReadFileFromImageAsync(Docker, $"{Image}:candidate-arm64", "/etc/machine-id"), "snapshot.sh ran for arm64 too");
            // The app was published for linux-arm64: its ELF header says AArch64 (e_machine 0xb7).
            Assert.AreEqual("b7", (await TestDocker.ExecAsync(Docker, container, "od -An -tx1 -j18 -N1 /opt/app/PlatformApp")).Output.Trim());
            // The masks were the build container's only: real arm64 hardware runs those units.
            foreach (var unit in EmulatedPlatformUnits.FailingUnderEmulation)
            {
                var (masked, _) = await TestDocker.ExecAsync(Docker, container, $"test -L /etc/systemd/system/{unit}");
                Assert.AreNotEqual(0L, masked, $"{unit} is masked in the image");
            }
        }
        finally
        {
            await TestDocker.RemoveContainerAsync(Docker, container);
        }
    }

    [TestMethod]
    public async Task The_amd64_candidate_is_the_native_one_and_unaffected()
    {
        var container = await TestDocker.BootAsync(Docker, $"{Image}:candidate", $"multi-amd64-{Guid.NewGuid():N}");
        try
        {
            Assert.AreEqual("x86_64", (await TestDocker.ExecAsync(Docker, container, "uname -m")).Output.Trim());
            Assert.AreEqual("running", (await TestDocker.ExecAsync(Docker, container, "systemctl is-system-running")).Output.Trim());
            StringAssert.Contains((await TestDocker.ExecAsync(Docker, container, "getfacl -cn /srv/shared/report.txt")).Output, $"user:{AclUser}:rw-");
            Assert.AreEqual("3e", (await TestDocker.ExecAsync(Docker, container, "od -An -tx1 -j18 -N1 /opt/app/PlatformApp")).Output.Trim(), "published for linux-x64");
        }
        finally
        {
            await TestDocker.RemoveContainerAsync(Docker, container);
        }
    }

    [TestMethod]
    public async Task A_second_build_finds_every_platform_up_to_date()
    {
        var before = await CandidateIdsAsync();
        var again = await s_project!.BuildAsync();
        Assert.IsTrue(again.Succeeded, again.Output);
        Assert.AreEqual(2, Regex.Matches(again.Output, @"is up to date \(inputs key").Count, again.Output);
        CollectionAssert.AreEqual(before, await CandidateIdsAsync(), "neither candidate was replaced");
        Assert.AreEqual(0, (await TestDocker.StageContainersAsync(Docker, Image)).Count);
    }

    [TestMethod]
    public async Task One_oci_archive_holds_an_index_of_both_platforms_with_each_sbom()
    {
        if (!File.Exists("/usr/bin/skopeo"))
        {
            TestDocker.MissingPrerequisite("skopeo is not installed; bash .ci/setup installs it");
        }
        var ids = await CandidateIdsAsync();
        var archive = Path.Combine(s_project!.Directory, "out", "platforms.tar");
        var build = await s_project.BuildAsync($"-p:MsArchiveOutputPath={archive}");
        Assert.IsTrue(build.Succeeded, build.Output);
        StringAssert.Contains(build.Output, $"Archive: wrote {archive} (oci");
        var index = JsonDocument.Parse(HostProcess.Run("skopeo", "inspect", "--raw", $"oci-archive:{archive}")).RootElement;
        Assert.AreEqual("application/vnd.oci.image.index.v1+json", index.GetProperty("mediaType").GetString());
        CollectionAssert.AreEquivalent(new[] { "linux/amd64", "linux/arm64" }, index.GetProperty("manifests").EnumerateArray()
            .Select(m => $"{m.GetProperty("platform").GetProperty("os").GetString()}/{m.GetProperty("platform").GetProperty("architecture").GetString()}").ToArray());
        foreach (var architecture in new[] { "amd64", "arm64" })
        {
            // The raw config skopeo picks for the architecture: its digest is the candidate's image id.
            var config = HostProcess.Run("skopeo", $"--override-arch={architecture}", "inspect", "--raw", "--config", $"oci-archive:{archive}");
            var digest = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(config)));
            CollectionAssert.Contains(ids, digest, $"the {architecture} image is not a candidate");
        }
        var listing = HostProcess.Run("tar", "-tf", archive).Split('\n');
        CollectionAssert.IsSubsetOf(new[] { "sbom/amd64.cdx.json", "sbom/arm64.cdx.json" }, listing, "each platform's bill of materials is in it");
    }

    [TestMethod]
    public async Task Pushed_as_one_image_index_that_gives_each_architecture_its_own_image()
    {
        _ = Build;
        using var registry = await LocalRegistry.StartAsync();
        var repository = $"{registry.Address}/{Image}";
        try
        {
            var push = await s_project!.BuildAsync("-p:MsPush=true", $"-p:MsRegistry={registry.Address}", "-p:MsImageTags=1.0");
            Assert.IsTrue(push.Succeeded, push.Output);
            var pushed = PushedItem().Matches(push.Output).ToDictionary(m => m.Groups["reference"].Value, m => (Platform: m.Groups["platform"].Value, Digest: m.Groups["digest"].Value));
            var perPlatform = new Dictionary<string, string>
            {
                ["amd64"] = pushed[$"{repository}:candidate-amd64"].Digest,
                ["arm64"] = pushed[$"{repository}:candidate-arm64"].Digest,
            };
            using var http = new HttpClient();
            foreach (var tag in new[] { "candidate", "1.0" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{registry.Address}/v2/{Image}/manifests/{tag}");
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.docker.distribution.manifest.list.v2+json"));
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/vnd.oci.image.index.v1+json"));
                using var response = await http.SendAsync(request);
                Assert.IsTrue(response.IsSuccessStatusCode, $"{tag}: {response.StatusCode}");
                using var index = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                StringAssert.Contains(index.RootElement.GetProperty("mediaType").GetString(), "list", $"{tag} is an image index");
                var listed = index.RootElement.GetProperty("manifests").EnumerateArray()
                    .ToDictionary(m => m.GetProperty("platform").GetProperty("architecture").GetString()!, m => m.GetProperty("digest").GetString()!);
                CollectionAssert.AreEquivalent(perPlatform.ToList(), listed.ToList(), $"{tag} lists both platforms' pushed manifests");
                Assert.AreEqual(response.Headers.GetValues("Docker-Content-Digest").Single(), pushed[$"{repository}:{tag}"].Digest, "the returned digest is the index's");
            }

            // `docker pull --platform linux/arm64` of the tag gets the arm64 image, a plain pull the engine's own.
            foreach (var (platform, local) in new[] { ("linux/arm64", $"{Image}:candidate-arm64"), ("linux/amd64", $"{Image}:candidate") })
            {
                await TestDocker.RemoveImageAsync(Docker, $"{repository}:candidate");
                await Docker.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = repository, Tag = "candidate", Platform = platform }, null, new Progress<JSONMessage>());
                var pulled = await Docker.Images.InspectImageAsync($"{repository}:candidate");
                Assert.AreEqual(platform.Split('/')[1], pulled.Architecture);
                Assert.AreEqual((await Docker.Images.InspectImageAsync(local)).ID, pulled.ID, $"the pull for {platform} got the image built for it");
            }

            // A clean engine (a Podman service of its own, with nothing of these images) gets the same through the index.
            await using var podman = await PodmanService.StartAsync(insecureRegistry: registry.Address);
            using var clean = podman.Connect();
            await clean.Images.CreateImageAsync(new ImagesCreateParameters { FromImage = repository, Tag = "candidate", Platform = "linux/arm64" }, null, new Progress<JSONMessage>());
            var onClean = await clean.Images.InspectImageAsync($"{repository}:candidate");
            Assert.AreEqual("arm64", onClean.Architecture);
            Assert.AreEqual((await Docker.Images.InspectImageAsync($"{Image}:candidate-arm64")).ID.Replace("sha256:", ""), onClean.ID.Replace("sha256:", ""),
                "a clean engine's pull for linux/arm64 got the arm64 image");
        }
        finally
        {
            await TestDocker.RemoveImageAsync(Docker, $"{repository}:candidate");
        }
    }

    [TestMethod]
    public async Task A_stage_failing_on_one_platform_fails_the_build_and_leaves_no_container()
    {
        _ = Build;
        var image = $"makinastates/arm64-fails-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image, "<PropertyGroup><MsPlatforms>linux/amd64;linux/arm64</MsPlatforms></PropertyGroup>");
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", """
            #!/bin/bash
            if [ "$(uname -m)" = aarch64 ]; then echo "stage3: not on arm64" >&2; exit 3; fi
            """, executable: true);
        try
        {
            var build = await project.BuildAsync();
            Assert.IsFalse(build.Succeeded);
            StringAssert.Contains(build.Output, "error MSI3001");
            StringAssert.Contains(build.Output, "stage3: not on arm64");
            Assert.IsNotNull(await TestDocker.ImageIdAsync(Docker, $"{image}:candidate"), "the amd64 platform, built first, has its candidate");
            Assert.IsNull(await TestDocker.ImageIdAsync(Docker, $"{image}:candidate-arm64"));
            Assert.AreEqual(0, (await TestDocker.StageContainersAsync(Docker, image)).Count, "a stage container was left");
        }
        finally
        {
            foreach (var reference in new[] { $"{image}:candidate", $"{image}-stage1:latest", $"{image}-stage1:arm64" })
            {
                await TestDocker.RemoveImageAsync(Docker, reference);
            }
        }
    }

    [TestMethod]
    public async Task Without_arm64_emulation_the_build_fails_at_once_with_what_to_install_and_leaves_nothing()
    {
        const string binfmt = "/proc/sys/fs/binfmt_misc";
        const string entry = binfmt + "/qemu-aarch64";
        var image = $"makinastates/no-emulation-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image, "<PropertyGroup><MsPlatform>linux/arm64</MsPlatform></PropertyGroup>");
        // Unregistered for the build, registered again as qemu-user-static registers it (F flag included).
        var registration = string.Join("\n", File.ReadAllLines("/usr/lib/binfmt.d/qemu-aarch64.conf").Where(l => l.Length > 0 && !l.StartsWith('#')));
        File.WriteAllText(entry, "-1");
        DotnetBuild failed;
        try
        {
            failed = await project.BuildAsync();
        }
        finally
        {
            File.WriteAllText(Path.Combine(binfmt, "register"), registration);
        }
        Assert.IsFalse(failed.Succeeded);
        StringAssert.Contains(failed.Output, "error MSI0110");
        StringAssert.Contains(failed.Output, "apt-get install qemu-user-static", "what to install");
        StringAssert.Contains(failed.Output, "/proc/sys/fs/binfmt_misc/register", "how to register");
        // At once: before any stage (an arm64 build takes minutes); the bound has room for a loaded 2-core machine.
        Assert.IsTrue(failed.Duration < TimeSpan.FromSeconds(180), $"it took {failed.Duration}");
        Assert.AreEqual(0, (await TestDocker.StageContainersAsync(Docker, image)).Count);
        Assert.IsNull(await TestDocker.ImageIdAsync(Docker, $"{image}:candidate-arm64"));
        Assert.IsNull(await TestDocker.ImageIdAsync(Docker, $"{image}:candidate"));
        StringAssert.StartsWith(File.ReadAllText(entry), "enabled", "registered again");
        StringAssert.Contains(File.ReadAllText(entry), "flags: POF");
    }

    [TestMethod]
    public async Task An_explicit_base_tarball_with_several_platforms_is_refused_before_any_platform_is_built()
    {
        var image = $"makinastates/one-tarball-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image, """
            <PropertyGroup>
              <MsPlatforms>linux/amd64;linux/arm64</MsPlatforms>
              <MsBaseImage>/srv/bases/my-base.tar.xz</MsBaseImage>
            </PropertyGroup>
            """);
        var build = await project.BuildAsync();
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, "error MSI0020");
        StringAssert.Contains(build.Output, "/srv/bases/my-base.tar.xz");
        Assert.IsFalse(build.Output.Contains("MsStage0:", StringComparison.Ordinal), "no platform's build started");
        Assert.AreEqual(0, (await TestDocker.StageContainersAsync(Docker, image)).Count);
        Assert.IsNull(await TestDocker.ImageIdAsync(Docker, $"{image}:candidate"));
    }

    [TestMethod]
    [DataRow("linux/amd64;linux/mips", "error MSI0019", "linux/mips")]
    [DataRow("linux/amd64;linux/arm64;linux/aarch64", "error MSI0020", "lists linux/arm64 twice")]
    public async Task An_unknown_or_repeated_platform_is_refused_before_anything_is_built(string platforms, string code, string named)
    {
        var image = $"makinastates/bad-platforms-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image, $"<PropertyGroup><MsPlatforms>{platforms}</MsPlatforms></PropertyGroup>");
        var build = await project.BuildAsync();
        Assert.IsFalse(build.Succeeded);
        StringAssert.Contains(build.Output, code);
        StringAssert.Contains(build.Output, named);
        Assert.IsFalse(build.Output.Contains("MsStage0:", StringComparison.Ordinal), "no platform's build started");
        Assert.AreEqual(0, (await TestDocker.StageContainersAsync(Docker, image)).Count);
    }

    private static async Task<string[]> CandidateIdsAsync() =>
        [(await Docker.Images.InspectImageAsync($"{Image}:candidate")).ID, (await Docker.Images.InspectImageAsync($"{Image}:candidate-arm64")).ID];
}
