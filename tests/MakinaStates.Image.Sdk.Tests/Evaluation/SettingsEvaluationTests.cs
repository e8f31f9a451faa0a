using MakinaStates.Image.Sdk.Tests.Support;
using Microsoft.Build.Evaluation;

namespace MakinaStates.Image.Sdk.Tests.Evaluation;

/// <summary>Evaluates image projects in-process (MSBuild located by Microsoft.Build.Locator) against the repo's sdk/.</summary>
[TestClass]
public sealed class SettingsEvaluationTests
{
    private static readonly string[] SeedVariables =
    [
        "MS_IMAGE", "MS_BASE", "MS_IMAGE_DIR", "MS_DATA_DIR", "MS_COMMAND", "MS_OS", "MS_OS_RELEASE", "MS_OS_MIRROR",
        "MS_BASEIMAGE", "MS_GIT_URL", "MS_GIT_BRANCH", "MS_STAGE0_TAG", "MS_DOCKERFILE_STAGE0", "MS_DOCKER_ARGS",
        "MS_MAKINASTATES_BUILD_FORCE", "MS_DO_SNAPSHOT", "MS_SKIP_STAGE0_BUILD", "MS_STAGE_PATH", "XDG_CACHE_HOME",
        "MS_MAKINASTATES", "MS_INIT", "MS_EXISTING_FOLDER_METADATA", "MS_PLATFORM", "MS_PLATFORMS", "MS_APP_RUNTIME_IDENTIFIER",
        "MS_ARCHIVE_OUTPUT_PATH", "MS_ARCHIVE_FORMAT", "MS_SBOM", "MS_SSH_COMMAND", "MS_SOURCE_DATE_EPOCH",
    ];

    private readonly Dictionary<string, string?> _savedEnvironment = [];
    private string _dir = "";

    [TestInitialize]
    public void Isolate()
    {
        foreach (var name in SeedVariables)
        {
            _savedEnvironment[name] = Environment.GetEnvironmentVariable(name);
            Environment.SetEnvironmentVariable(name, null);
        }
        _dir = Directory.CreateTempSubdirectory("eval-").FullName;
    }

    [TestCleanup]
    public void Restore()
    {
        foreach (var (name, value) in _savedEnvironment)
        {
            Environment.SetEnvironmentVariable(name, value);
        }
        Directory.Delete(_dir, recursive: true);
    }

    private Project Evaluate(string body = "", IDictionary<string, string>? globalProperties = null)
    {
        var path = Path.Combine(_dir, "image.proj");
        File.WriteAllText(path, $"""
            <Project>
              <Import Project="{Repository.Root}/sdk/Sdk.props" />
              {body}
              <Import Project="{Repository.Root}/sdk/Sdk.targets" />
            </Project>
            """);
        var collection = new ProjectCollection(globalProperties ?? new Dictionary<string, string>());
        return collection.LoadProject(path);
    }

    private string Touch(string relativePath)
    {
        var path = Path.Combine(_dir, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, "");
        return path;
    }

    [TestMethod]
    public void Docker_args_e_MS_sets_the_setting_as_the_environment_would_over_the_environment_and_under_a_property()
    {
        Environment.SetEnvironmentVariable("MS_BASE", "env/base");
        Environment.SetEnvironmentVariable("MS_OS_RELEASE", "bullseye");
        const string Args = "-ti --rm -e MS_BASE=cli/base --env=MS_OS_RELEASE=trixie -e \"MS_GIT_BRANCH=dev x\" -e MS_COMMAND='/bin/sh -c x' " +
            "--label \"note=-e MS_OS=ubuntu\" -e MS_DO_SNAPSHOT=no -e MS_DO_SNAPSHOT=yes2 -e 'OTHER=a,b)c' -e MS_INIT=none";
        var project = Evaluate($"<PropertyGroup><MsImage>a/b</MsImage><MsDockerArgs>{System.Security.SecurityElement.Escape(Args)}</MsDockerArgs></PropertyGroup>");
        Assert.AreEqual("cli/base", project.GetPropertyValue("MsBase"), "the command line wins over MS_BASE");
        Assert.AreEqual("trixie", project.GetPropertyValue("MsOsRelease"));
        Assert.AreEqual("baseimage-debian-trixie.tar.xz", project.GetPropertyValue("MsBaseImage"), "a default derived from it follows");
        Assert.AreEqual("dev x", project.GetPropertyValue("MsGitBranch"));
        Assert.AreEqual("/bin/sh -c x", project.GetPropertyValue("MsCommand"));
        Assert.AreEqual("debian", project.GetPropertyValue("MsOs"), "a quoted value of another flag is not an -e");
        Assert.AreEqual("yes2", project.GetPropertyValue("MsDoSnapshot"), "the last -e of a name wins, as with docker");
        Assert.AreEqual("none", project.GetPropertyValue("MsInit"), "commas and parentheses in another value change nothing");

        var property = Evaluate($"<PropertyGroup><MsImage>a/b</MsImage><MsBase>project/base</MsBase></PropertyGroup>",
            new Dictionary<string, string> { ["MsDockerArgs"] = "-e MS_BASE=cli/base" });
        Assert.AreEqual("project/base", property.GetPropertyValue("MsBase"), "a project property wins over the command line");

        Environment.SetEnvironmentVariable("MS_DOCKER_ARGS", "-e MS_BASE=from/ms-docker-args");
        Assert.AreEqual("from/ms-docker-args", Evaluate("<PropertyGroup><MsImage>a/b</MsImage></PropertyGroup>").GetPropertyValue("MsBase"));
    }

    [TestMethod]
    public void Docker_args_volume_at_docker_data_is_the_data_dir_and_an_e_MS_DATA_DIR_wins()
    {
        var project = Evaluate("<PropertyGroup><MsImage>a/b</MsImage><MsDockerArgs>-v seed-data:/docker/data -v /h:/docker/data2</MsDockerArgs></PropertyGroup>");
        Assert.AreEqual(Path.Combine(_dir, "seed-data") + "/", project.GetPropertyValue("MsDataDir"));
        var both = Evaluate("<PropertyGroup><MsImage>a/b</MsImage><MsDockerArgs>-e MS_DATA_DIR=/tmp/e-data -v seed-data:/docker/data</MsDockerArgs></PropertyGroup>");
        Assert.AreEqual("/tmp/e-data/", both.GetPropertyValue("MsDataDir"));
    }

    [TestMethod]
    public void Seed_layout_data_folder_and_image_dir_are_found_and_an_explicit_setting_wins()
    {
        const string Image = "<PropertyGroup><MsImage>mycompany/app:1.0</MsImage></PropertyGroup>";
        // A data/ folder without a base tarball is not the seed's.
        Directory.CreateDirectory(Path.Combine(_dir, "data", "mycompany", "app", "injected_volumes"));
        var plain = Evaluate(Image);
        StringAssert.EndsWith(plain.GetPropertyValue("MsDataDir"), "/.cache/makinastates-image/");
        Assert.AreEqual("cache", plain.GetPropertyValue("_MsDataDirOrigin"));
        Assert.AreEqual(_dir + "/", plain.GetPropertyValue("MsImageDir"));

        Touch("data/baseimage-debian-bookworm.tar.xz");
        var seed = Evaluate(Image);
        Assert.AreEqual(Path.Combine(_dir, "data") + "/", seed.GetPropertyValue("MsDataDir"));
        Assert.AreEqual("seed", seed.GetPropertyValue("_MsDataDirOrigin"));
        Assert.AreEqual(Path.Combine(_dir, "data", "mycompany", "app") + "/", seed.GetPropertyValue("MsImageDir"), "the image's name without its tag");
        Assert.AreEqual("seed", seed.GetPropertyValue("_MsImageDirOrigin"));

        var explicitDirs = Evaluate(Image, new Dictionary<string, string> { ["MsImageDir"] = "elsewhere", ["MsDataDir"] = "/tmp/mine" });
        // -p: values cannot be rewritten: the tasks get the full paths (_MsImageDir, _MsDataDir).
        Assert.AreEqual(Path.Combine(_dir, "elsewhere") + "/", explicitDirs.GetPropertyValue("_MsImageDir"));
        Assert.AreEqual("/tmp/mine/", explicitDirs.GetPropertyValue("_MsDataDir"));
        Assert.AreEqual("set", explicitDirs.GetPropertyValue("_MsImageDirOrigin"));
        Environment.SetEnvironmentVariable("MS_IMAGE_DIR", "/tmp/env-image");
        Assert.AreEqual("/tmp/env-image/", Evaluate(Image).GetPropertyValue("MsImageDir"));
        Environment.SetEnvironmentVariable("MS_IMAGE_DIR", null);

        // Both hold a tree: evaluation keeps the project folder, and Stage0 refuses the build (MSI0024) naming both.
        Directory.CreateDirectory(Path.Combine(_dir, "image_rootfs"));
        var both = Evaluate(Image);
        Assert.AreEqual("both", both.GetPropertyValue("_MsImageDirOrigin"));
        Assert.AreEqual(Path.Combine(_dir, "data", "mycompany", "app") + "/", both.GetPropertyValue("_MsSeedImageDir"));
    }

    [TestMethod]
    public void Defaults_follow_the_design_table()
    {
        var project = Evaluate();
        Assert.AreEqual("scratch", project.GetPropertyValue("MsBase"));
        Assert.AreEqual("/sbin/init", project.GetPropertyValue("MsCommand"));
        Assert.AreEqual("debian", project.GetPropertyValue("MsOs"));
        Assert.AreEqual("bookworm", project.GetPropertyValue("MsOsRelease"));
        Assert.AreEqual("baseimage-debian-bookworm.tar.xz", project.GetPropertyValue("MsBaseImage"));
        Assert.AreEqual("stable", project.GetPropertyValue("MsGitBranch"));
        Assert.AreEqual("yes", project.GetPropertyValue("MsDoSnapshot"));
        Assert.AreEqual(_dir + "/", project.GetPropertyValue("MsImageDir"));
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.AreEqual($"{home}/.cache/makinastates-image/", project.GetPropertyValue("MsDataDir"));
        Assert.AreEqual("", project.GetPropertyValue("MsOsMirror"), "resolved from the host's apt sources by Stage0, not at evaluation");
        Assert.AreEqual("https://github.com/makinacorpus/makina-states", project.GetPropertyValue("MsGitUrl"), "the seed's upstream");
        Assert.AreEqual("auto", project.GetPropertyValue("MsMakinaStates"));
        Assert.AreEqual("auto", project.GetPropertyValue("MsInit"));
        Assert.AreEqual("acl", project.GetPropertyValue("MsExistingFolderMetadata"));
    }

    [TestMethod]
    public void New_settings_follow_their_environment_variables_and_shape_the_image()
    {
        Environment.SetEnvironmentVariable("MS_MAKINASTATES", "false");
        Environment.SetEnvironmentVariable("MS_INIT", "none");
        Environment.SetEnvironmentVariable("MS_EXISTING_FOLDER_METADATA", "all");
        Environment.SetEnvironmentVariable("MS_GIT_URL", "/srv/mirrors/makina-states");
        var project = Evaluate("<PropertyGroup><MsInit>systemd</MsInit></PropertyGroup>");
        Assert.AreEqual("false", project.GetPropertyValue("MsMakinaStates"));
        Assert.AreEqual("systemd", project.GetPropertyValue("MsInit"), "the project wins over MS_INIT");
        Assert.AreEqual("all", project.GetPropertyValue("MsExistingFolderMetadata"));
        Assert.AreEqual("/srv/mirrors/makina-states", project.GetPropertyValue("MsGitUrl"));
        // They shape the image: each is in the inputs key (Settings/InputsKey.cs).
        var keyed = new MakinaStates.Image.Sdk.Settings.BuildDescription { MsMakinaStates = "false", MsInit = "systemd", MsExistingFolderMetadata = "all" }
            .KeyedSettings().ToDictionary(s => s.Name, s => s.Value);
        Assert.AreEqual("false", keyed["MsMakinaStates"]);
        Assert.AreEqual("systemd", keyed["MsInit"]);
        Assert.AreEqual("all", keyed["MsExistingFolderMetadata"]);
        // The scripts see them (resolved by Stage0) as MS_*.
        var environment = new MakinaStates.Image.Sdk.Settings.BuildDescription { MsMakinaStates = "false", MsInit = "systemd", MsExistingFolderMetadata = "all" }.StageEnvironment();
        foreach (var variable in new[] { "MS_MAKINASTATES=false", "MS_INIT=systemd", "MS_EXISTING_FOLDER_METADATA=all" })
        {
            CollectionAssert.Contains(environment.ToList(), variable);
        }
    }

    [TestMethod]
    public void Seed_environment_variables_are_honoured()
    {
        Environment.SetEnvironmentVariable("MS_IMAGE", "env/image");
        Environment.SetEnvironmentVariable("MS_OS_RELEASE", "trixie");
        Environment.SetEnvironmentVariable("MS_DATA_DIR", "/tmp/env-data");
        var project = Evaluate();
        Assert.AreEqual("env/image", project.GetPropertyValue("MsImage"));
        Assert.AreEqual("trixie", project.GetPropertyValue("MsOsRelease"));
        Assert.AreEqual("baseimage-debian-trixie.tar.xz", project.GetPropertyValue("MsBaseImage"));
        Assert.AreEqual("/tmp/env-data/", project.GetPropertyValue("MsDataDir"));
    }

    [TestMethod]
    public void Project_and_command_line_properties_win_over_the_environment()
    {
        Environment.SetEnvironmentVariable("MS_IMAGE", "env/image");
        Environment.SetEnvironmentVariable("MS_OS", "ubuntu");
        var project = Evaluate("<PropertyGroup><MsImage>project/image</MsImage></PropertyGroup>",
            new Dictionary<string, string> { ["MsOs"] = "debian" });
        Assert.AreEqual("project/image", project.GetPropertyValue("MsImage"));
        Assert.AreEqual("debian", project.GetPropertyValue("MsOs"));
    }

    [TestMethod]
    [DataRow("MsStage1Name")]
    [DataRow("MsStage2Name")]
    [DataRow("MsImageCandidate")]
    public void Read_only_names_set_by_the_user_stop_stage0_in_process(string name)
    {
        var project = Evaluate("<PropertyGroup><MsImage>test/read-only</MsImage></PropertyGroup>", new Dictionary<string, string> { [name] = "mine" });
        // MSBuild's own console logger (a logger type declared here would load MSBuild before the Locator runs).
        var output = new System.Text.StringBuilder();
        var logger = new Microsoft.Build.Logging.ConsoleLogger(Microsoft.Build.Framework.LoggerVerbosity.Minimal, text => output.Append(text), null, null);
        Assert.IsFalse(project.Build(["MsStage0"], [logger]));
        StringAssert.Contains(output.ToString(), "error MSI0010");
        StringAssert.Contains(output.ToString(), $"{name}='mine'");
    }

    [TestMethod]
    public void Platforms_default_to_the_engines_own_and_follow_their_environment_variables()
    {
        var project = Evaluate();
        Assert.AreEqual("", project.GetPropertyValue("MsPlatform"), "empty: the engine's own platform, asked by Stage0");
        Assert.AreEqual("", project.GetPropertyValue("MsPlatforms"));
        Assert.AreEqual("", project.GetPropertyValue("MsAppRuntimeIdentifier"), "empty: the platform's runtime");
        Assert.AreEqual(Path.Combine(_dir, "obj", "msimage") + "/", project.GetPropertyValue("MsIntermediateDir"));
        Environment.SetEnvironmentVariable("MS_PLATFORM", "linux/arm64");
        Environment.SetEnvironmentVariable("MS_PLATFORMS", "linux/amd64,linux/arm64");
        project = Evaluate("", new Dictionary<string, string> { ["_MsPlatformSuffix"] = "arm64" });
        Assert.AreEqual("linux/arm64", project.GetPropertyValue("MsPlatform"));
        Assert.AreEqual("linux/amd64,linux/arm64", project.GetPropertyValue("MsPlatforms"));
        Assert.AreEqual(Path.Combine(_dir, "obj", "msimage", "arm64") + "/", project.GetPropertyValue("MsIntermediateDir"), "each platform of several keeps its state apart");
    }

    [TestMethod]
    public void Xdg_cache_home_places_the_data_dir()
    {
        Environment.SetEnvironmentVariable("XDG_CACHE_HOME", "/tmp/xdg");
        Assert.AreEqual("/tmp/xdg/makinastates-image/", Evaluate().GetPropertyValue("MsDataDir"));
    }

    [TestMethod]
    public void Stage_targets_exist_and_build_image_chains_them()
    {
        var project = Evaluate();
        foreach (var target in new[] { "MsStage0", "MsStage1", "MsStage2", "MsStage3", "BuildImage", "Build", "Restore", "Clean" })
        {
            Assert.IsTrue(project.Targets.ContainsKey(target), target);
        }
        StringAssert.Contains(project.Targets["_MsBuildOnePlatform"].DependsOnTargets, "MsStage0;MsStage1;MsStage2;MsStage3;");
        StringAssert.Contains(project.Targets["BuildImage"].DependsOnTargets, "_MsResolvePlatforms;_MsBuildOnePlatform;_MsBuildEachPlatform");
        Assert.AreEqual("'$(_MsSeveralPlatforms)' == 'true'", project.Targets["_MsBuildEachPlatform"].Condition.Trim(), "several platforms: one build each");
        foreach (var stage in new[] { "MsStage1", "MsStage2", "MsStage3" })
        {
            StringAssert.Contains(project.Targets[stage].Condition, "MsImageUpToDate", $"{stage} must not run when the candidate is up to date");
        }
        Assert.AreEqual("BuildImage", project.Targets["Build"].DependsOnTargets);
        StringAssert.Contains(project.Targets["BuildImage"].Condition, "DesignTimeBuild");
    }

    [TestMethod]
    [DataRow("1.2.3,latest")]
    [DataRow("1.2.3%3Blatest")]
    [DataRow("1.2.3%2Clatest")]
    public void MsImageTags_on_the_command_line_become_items_beside_the_projects(string value)
    {
        var project = Evaluate("""<ItemGroup><MsImageTags Include="stable" /></ItemGroup>""", new Dictionary<string, string> { ["MsImageTags"] = value, ["MsImage"] = "a/b" });
        CollectionAssert.AreEqual(new[] { "stable", "1.2.3", "latest" }, project.GetItems("MsImageTags").Select(i => i.EvaluatedInclude).ToArray());
        Assert.AreEqual("false", project.GetPropertyValue("MsPush"));
    }

    [TestMethod]
    public void The_registry_password_never_becomes_a_property()
    {
        Environment.SetEnvironmentVariable("MS_REGISTRY_USERNAME", "ci");
        Environment.SetEnvironmentVariable("MS_REGISTRY_PASSWORD", "secret-from-env");
        try
        {
            var project = Evaluate();
            Assert.AreEqual("ci", project.GetPropertyValue("MsRegistryUsername"));
            Assert.AreEqual("", project.GetPropertyValue("MsRegistryPassword"), "the task reads MS_REGISTRY_PASSWORD itself");
        }
        finally
        {
            Environment.SetEnvironmentVariable("MS_REGISTRY_USERNAME", null);
            Environment.SetEnvironmentVariable("MS_REGISTRY_PASSWORD", null);
        }
    }

    [TestMethod]
    public void Archive_and_sbom_settings_default_follow_their_environment_variables_and_resolve_from_the_project()
    {
        var project = Evaluate();
        Assert.AreEqual("", project.GetPropertyValue("MsArchiveOutputPath"), "no archive unless asked");
        Assert.AreEqual("oci", project.GetPropertyValue("MsArchiveFormat"));
        Assert.AreEqual("true", project.GetPropertyValue("MsSbom"));
        Assert.IsFalse(Settings(project).ContainsKey("MsArchiveOutputPath"), "an empty path stays empty, not the project's folder");

        Environment.SetEnvironmentVariable("MS_ARCHIVE_OUTPUT_PATH", "out/");
        Environment.SetEnvironmentVariable("MS_ARCHIVE_FORMAT", "docker");
        Environment.SetEnvironmentVariable("MS_SBOM", "false");
        project = Evaluate();
        Assert.AreEqual("docker", project.GetPropertyValue("MsArchiveFormat"));
        Assert.AreEqual("false", project.GetPropertyValue("MsSbom"));
        var settings = Settings(project);
        Assert.AreEqual(Path.Combine(_dir, "out") + "/", settings["MsArchiveOutputPath"], "relative to the project, still a folder");
        Assert.AreEqual("docker", settings["MsArchiveFormat"]);
        // Neither shapes the image: a copy of it and a file beside it.
        var keyed = new MakinaStates.Image.Sdk.Settings.BuildDescription().KeyedSettings().Select(k => k.Name).ToArray();
        CollectionAssert.DoesNotContain(keyed, "MsArchiveOutputPath");
        CollectionAssert.DoesNotContain(keyed, "MsArchiveFormat");
        CollectionAssert.DoesNotContain(keyed, "MsSbom");
    }

    [TestMethod]
    public void The_ssh_command_follows_ms_ssh_command_and_is_not_keyed()
    {
        Assert.AreEqual("", Settings(Evaluate())["MsSshCommand"], "empty: ssh from PATH, with the user's ssh config");
        Environment.SetEnvironmentVariable("MS_SSH_COMMAND", "ssh -F /etc/ci/ssh_config");
        Assert.AreEqual("ssh -F /etc/ci/ssh_config", Settings(Evaluate())["MsSshCommand"]);
        CollectionAssert.DoesNotContain(new MakinaStates.Image.Sdk.Settings.BuildDescription().KeyedSettings().Select(k => k.Name).ToArray(), "MsSshCommand",
            "how the engine is reached does not shape the image");
    }

    [TestMethod]
    public void Every_ms_variable_a_default_reads_can_be_set_by_an_e_in_MsDockerArgs()
    {
        // The seed's `-e MS_X=…` sets a setting as the environment would (Sdk.Settings.targets): each MS_* fallback needs
        // its line there, so a new setting's fallback without one would silently ignore the seed's command line.
        var targets = File.ReadAllText(Path.Combine(Repository.Root, "sdk", "Sdk.Settings.targets"));
        var read = System.Text.RegularExpressions.Regex.Matches(targets, @"\$\((MS_[A-Z0-9_]+)\)").Select(m => m.Groups[1].Value).ToHashSet();
        var settable = System.Text.RegularExpressions.Regex.Matches(targets, @"<(MS_[A-Z0-9_]+) Condition=""\$\(_MsDockerArgsEnv\.Contains\('\|\1=").Select(m => m.Groups[1].Value).ToHashSet();
        read.Remove("MS_DOCKER_ARGS");
        CollectionAssert.AreEquivalent(read.Order().ToArray(), settable.Order().ToArray(), "MS_* fallbacks without their -e line, or lines without a fallback");
    }

    /// <summary>The settings as MsResolveSettings collects them for Stage0 (its _MsSetting items).</summary>
    private static Dictionary<string, string> Settings(Project project)
    {
        var instance = project.CreateProjectInstance();
        Assert.IsTrue(instance.Build("MsResolveSettings", []));
        return instance.GetItems("_MsSetting").ToDictionary(i => i.EvaluatedInclude, i => i.GetMetadataValue("Value"));
    }
}
