using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The one description of a build, and the one place each setting is named.</summary>
[TestClass]
public sealed class BuildDescriptionTests
{
    [TestMethod]
    public void It_round_trips_and_derives_the_stage_environment_once()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("description-").FullName, "build.json");
        var description = new BuildDescription { MsImage = "a/b", MsDockerArgs = "-e TOKEN=x -l team=ops", Stage1Name = "s1" };
        description.InjectedVolumes.Add(new BuildDescription.Item("/src/site", new Dictionary<string, string> { ["TargetPath"] = "/srv/site/" }));
        description.Save(path);
        var loaded = BuildDescription.Load(path);
        Assert.AreEqual("a/b", loaded.MsImage);
        Assert.AreEqual("/srv/site/", BuildDescription.TaskItems(loaded.InjectedVolumes)[0].GetMetadata("TargetPath"));
        var environment = loaded.StageEnvironment();
        CollectionAssert.Contains(environment.ToList(), "MS_IMAGE=a/b");
        CollectionAssert.Contains(environment.ToList(), "MS_STAGE1_NAME=s1");
        Assert.AreEqual("TOKEN=x", environment[^1], "MsDockerArgs' -e values come last");
        Assert.AreEqual("ops", loaded.DockerRunArguments.Labels["team"]);
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }

    [TestMethod]
    public void An_MS_setting_given_with_e_reaches_the_scripts_once_as_resolved()
    {
        // Evaluation applied -e MS_BASE=cli/base, and a project property won over it: the scripts see the winner, once.
        var description = new BuildDescription { MsBase = "project/base", MsDockerArgs = "-ti -e MS_BASE=cli/base -e OTHER=1" };
        var environment = description.StageEnvironment();
        CollectionAssert.AreEqual(new[] { "MS_BASE=project/base" }, environment.Where(e => e.StartsWith("MS_BASE=", StringComparison.Ordinal)).ToList());
        Assert.AreEqual("OTHER=1", environment[^1]);
    }

    [TestMethod]
    public void A_setting_the_description_does_not_have_is_refused()
    {
        Assert.ThrowsExactly<InvalidOperationException>(() => new BuildDescription().Set("MsNoSuchSetting", "x"));
        Assert.ThrowsExactly<InvalidOperationException>(() => new BuildDescription().Set("BuildId", "x"), "resolved values are Stage0's, not settings");
    }

    [TestMethod]
    public void Sdk_targets_names_each_engine_setting_once_and_the_seed_variables_once()
    {
        var settings = File.ReadAllText(Path.Combine(Repository.Root, "sdk", "Sdk.Settings.targets"));
        var targets = settings + string.Concat(new[] { "Sdk.targets", "Sdk.Platforms.targets", "Sdk.Pipeline.targets" }
            .Select(f => File.ReadAllText(Path.Combine(Repository.Root, "sdk", f))));
        foreach (var setting in new[] { "$(MsDockerHost)", "$(MsDockerCertPath)", "$(MsDockerTlsVerify)", "$(MsDockerRemote)" })
        {
            Assert.AreEqual(1, Occurrences(targets, setting), setting);
        }
        // The seed's variables are read by the defaults only; after them, no MS_* name appears.
        var afterDefaults = targets[targets.IndexOf("<Target Name=\"MsResolveSettings\"", StringComparison.Ordinal)..];
        foreach (var (name, _) in new BuildDescription().SeedSettings())
        {
            Assert.AreEqual(0, Occurrences(afterDefaults, $"$({name})"), $"{name} is read outside the defaults");
        }
        Assert.AreEqual(0, Occurrences(targets, "MsStageEnvironment"), "the MS_* list lives in BuildDescription.SeedSettings");
    }

    [TestMethod]
    public void Every_setting_the_targets_pass_exists_in_the_description()
    {
        var targets = System.Xml.Linq.XDocument.Load(Path.Combine(Repository.Root, "sdk", "Sdk.Settings.targets"));
        var passed = targets.Descendants().Where(e => e.Name.LocalName == "_MsSetting").Select(e => (string)e.Attribute("Include")!).ToList();
        Assert.IsTrue(passed.Count > 20);
        foreach (var name in passed)
        {
            new BuildDescription().Set(name, "value");
        }
        CollectionAssert.AllItemsAreUnique(passed);
    }

    private static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
        {
            count++;
        }
        return count;
    }
}
