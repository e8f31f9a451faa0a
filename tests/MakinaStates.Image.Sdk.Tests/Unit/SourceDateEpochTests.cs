using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>MsSourceDateEpoch: what each value resolves to, where it came from, and its line in the inputs key.</summary>
[TestClass]
public sealed class SourceDateEpochTests
{
    private static readonly DateTimeOffset BaseMade = DateTimeOffset.FromUnixTimeSeconds(1733000000);

    [TestMethod]
    public void Empty_leaves_it_to_the_base_which_gives_its_time_once_it_exists()
    {
        var unresolved = SourceDateEpoch.Resolve("", "/nowhere");
        Assert.IsNull(unresolved.Seconds);
        Assert.AreEqual("base", unresolved.KeyValue, "a cold build keys on 'the base this build makes' (its tarball is keyed by content later)");
        var resolved = unresolved.WithBase(BaseMade, "the base tarball's time (x.tar.xz)");
        Assert.AreEqual(1733000000L, resolved.Seconds);
        StringAssert.Contains(resolved.Describe(), "2024-11-30 20:53:20 UTC (1733000000), from the base tarball's time (x.tar.xz)");
        Assert.AreEqual(unresolved, unresolved.WithBase(null, "absent"), "no base yet: still left to the base");
    }

    [TestMethod]
    public void Unix_seconds_are_taken_as_they_are_and_the_base_does_not_override_them()
    {
        var epoch = SourceDateEpoch.Resolve(" 1700000000 ", "/nowhere");
        Assert.AreEqual(1700000000L, epoch.Seconds);
        Assert.AreEqual("1700000000", epoch.KeyValue);
        Assert.AreEqual(epoch, epoch.WithBase(BaseMade, "base"));
    }

    [TestMethod]
    public void Now_clamps_nothing()
    {
        var epoch = SourceDateEpoch.Resolve("now", "/nowhere");
        Assert.IsNull(epoch.Seconds);
        Assert.IsNull(epoch.Time);
        Assert.AreEqual("now", epoch.KeyValue);
        Assert.AreEqual(epoch, epoch.WithBase(BaseMade, "base"), "now is not left to the base");
    }

    [TestMethod]
    public void Git_is_the_time_of_the_projects_head_commit()
    {
        var repository = Directory.CreateTempSubdirectory("msimage-epoch-git-").FullName;
        try
        {
            HostProcess.Run("git", "-C", repository, "init", "-q");
            File.WriteAllText(Path.Combine(repository, "a"), "a");
            HostProcess.Run("git", "-C", repository, "add", "a");
            HostProcess.Run("env", "GIT_COMMITTER_DATE=@1690000000 +0000", "GIT_AUTHOR_DATE=@1690000000 +0000", "git", "-C", repository,
                "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "a");
            var epoch = SourceDateEpoch.Resolve("git", repository);
            Assert.AreEqual(1690000000L, epoch.Seconds);
            StringAssert.StartsWith(epoch.Origin, "git: the time of HEAD (");
        }
        finally
        {
            Directory.Delete(repository, recursive: true);
        }
    }

    [TestMethod]
    [DataRow("yesterday", "neither Unix seconds nor git nor now")]
    [DataRow("-5", "neither Unix seconds nor git nor now")]
    [DataRow("1.5", "neither Unix seconds nor git nor now")]
    [DataRow("99999999999999", "neither Unix seconds nor git nor now")]
    [DataRow("git", "git found no HEAD commit")]
    public void A_value_it_cannot_use_is_MSI0021_naming_what_to_set(string value, string reason)
    {
        var folder = Directory.CreateTempSubdirectory("msimage-epoch-nogit-").FullName;
        try
        {
            var error = Assert.ThrowsExactly<ImageBuildException>(() => SourceDateEpoch.Resolve(value, folder));
            Assert.AreEqual(MsiCodes.SourceDateEpochInvalid, error.Code);
            StringAssert.Contains(error.Message, $"MsSourceDateEpoch '{value}'");
            StringAssert.Contains(error.Message, reason);
            StringAssert.Contains(error.Message, "SOURCE_DATE_EPOCH");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void The_resolved_epoch_is_in_the_inputs_key()
    {
        static string Key(SourceDateEpoch? epoch) => InputsKey.Compose(new BuildDescription { MsImage = "a/b", SourceDateEpoch = epoch }, "sdk", "base",
            [], "tree").Value;
        // git's value moves with each commit while the setting stays "git".
        Assert.AreNotEqual(Key(new SourceDateEpoch(1, "git")), Key(new SourceDateEpoch(2, "git")));
        Assert.AreNotEqual(Key(new SourceDateEpoch(null, "base")), Key(new SourceDateEpoch(null, "now: times as the build leaves them")));
        Assert.AreEqual(Key(new SourceDateEpoch(5, "SOURCE_DATE_EPOCH")), Key(new SourceDateEpoch(5, "MsSourceDateEpoch")), "where it came from is not an input");
    }
}
