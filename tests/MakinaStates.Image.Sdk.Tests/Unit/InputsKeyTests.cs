using System.Reflection;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The inputs key: composed from the whole build description, matched against a candidate, amended once.</summary>
[TestClass]
public sealed class InputsKeyTests
{
    private static BuildDescription Description() => new()
    {
        MsImage = "a/b", MsCommand = "/sbin/init", MsOs = "debian", MsOsRelease = "bookworm", Platform = "linux/amd64",
        MsImageDir = "/home/me/image/", MsDataDir = "/home/me/.cache/makinastates-image/",
    };

    private static InputsKey Key(BuildDescription build, string tree = "t1") =>
        InputsKey.Compose(build, "sdk1", "base1", [("stage3.sh", "s3")], tree);

    private static IEnumerable<PropertyInfo> Settings() => typeof(BuildDescription).GetProperties()
        .Where(p => p.PropertyType == typeof(string) && p.Name.StartsWith("Ms", StringComparison.Ordinal));

    [TestMethod]
    public void Every_setting_is_in_the_key_unless_it_says_why_not()
    {
        var reference = Key(Description()).Value;
        var keyed = 0;
        foreach (var setting in Settings())
        {
            var build = Description();
            setting.SetValue(build, (string)setting.GetValue(build)! + "-changed");
            var excluded = setting.GetCustomAttribute<NotInInputsKeyAttribute>();
            if (excluded is null)
            {
                keyed++;
                Assert.AreNotEqual(reference, Key(build).Value, $"{setting.Name} shapes the image: changing it must change the key");
            }
            else
            {
                Assert.IsFalse(string.IsNullOrWhiteSpace(excluded.Why), setting.Name);
                Assert.AreEqual(reference, Key(build).Value, $"{setting.Name} is left out of the key ({excluded.Why})");
            }
        }
        Assert.IsTrue(keyed >= 15, $"only {keyed} settings keyed");
    }

    [TestMethod]
    public void Absolute_folders_of_this_machine_are_not_in_the_key()
    {
        // Two clones of one project in different folders have the same inputs.
        var elsewhere = Description();
        elsewhere.MsImageDir = "/srv/ci/job-42/image/";
        elsewhere.MsDataDir = "/var/cache/ms/";
        Assert.AreEqual(Key(Description()).Value, Key(elsewhere).Value);
        Assert.IsFalse(Key(Description()).Text.Contains("/home/me", StringComparison.Ordinal));
    }

    [TestMethod]
    public void Items_and_their_values_are_in_the_key()
    {
        var reference = Key(Description()).Value;
        static BuildDescription.Item Item(string spec, params (string, string)[] metadata) => new(spec, metadata.ToDictionary(m => m.Item1, m => m.Item2));
        var changes = new Action<BuildDescription>[]
        {
            b => b.Labels.Add(Item("team", ("Value", "ops"))),
            b => b.EnvironmentVariables.Add(Item("MODE", ("Value", "prod"))),
            b => b.Ports.Add(Item("80", ("Type", "tcp"))),
            b => b.Volumes.Add(Item("/data")),
            b => b.Secrets.Add(Item("token", ("EnvironmentVariable", "TOKEN"))),
        };
        foreach (var change in changes)
        {
            var build = Description();
            change(build);
            Assert.AreNotEqual(reference, Key(build).Value);
        }
        // A label's value, not only its name.
        var a = Description();
        a.Labels.Add(Item("team", ("Value", "111")));
        var b = Description();
        b.Labels.Add(Item("team", ("Value", "222")));
        Assert.AreNotEqual(Key(a).Value, Key(b).Value);
        var e1 = Description();
        e1.EnvironmentVariables.Add(Item("MODE", ("Value", "1")));
        var e2 = Description();
        e2.EnvironmentVariables.Add(Item("MODE", ("Value", "2")));
        Assert.AreNotEqual(Key(e1).Value, Key(e2).Value);
    }

    [TestMethod]
    public void The_text_round_trips_and_amendments_change_one_line()
    {
        var build = Description();
        build.MsCommand = "/bin/sh -c 'echo a\ntree=evil'";
        var key = Key(build, tree: "t1");
        Assert.AreEqual(key.Value, InputsKey.Parse(key.Text).Value);
        Assert.AreEqual("t1", key.Tree);
        Assert.AreEqual("base1", key.Base);
        var sent = key.WithTree("t2");
        Assert.AreEqual("t2", sent.Tree);
        Assert.AreNotEqual(key.Value, sent.Value);
        Assert.AreEqual(Key(build, tree: "t2").Value, sent.Value, "the amended key is the key of the tree as sent");
        Assert.AreEqual(key.Text.Split('\n').Length, sent.Text.Split('\n').Length);
        Assert.AreEqual(InputsKey.Compose(build, "sdk1", "base2", [("stage3.sh", "s3")], "t1").Value, key.WithBase("base2").Value);
    }

    [TestMethod]
    public void A_candidate_carries_its_label_or_the_alias_recorded_for_it()
    {
        var cold = InputsKey.Compose(Description(), "sdk1", InputsKey.MissingBase, [], "t1");
        var written = cold.WithBase("f00d");
        var directory = Directory.CreateTempSubdirectory("inputs-key-").FullName;
        try
        {
            Assert.IsTrue(cold.IsCarriedBy("sha256:1", cold.Value, directory));
            Assert.IsFalse(written.IsCarriedBy("sha256:1", cold.Value, directory), "no alias recorded yet");
            written.RecordAlias("sha256:1", directory);
            Assert.IsTrue(written.IsCarriedBy("sha256:1", cold.Value, directory));
            Assert.IsFalse(written.IsCarriedBy("sha256:2", cold.Value, directory), "another candidate image");
            Assert.IsFalse(cold.WithTree("t2").IsCarriedBy("sha256:1", cold.Value, directory), "another key");
            Assert.IsFalse(written.IsCarriedBy("sha256:1", null, ""), "no obj/ folder, no label");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
