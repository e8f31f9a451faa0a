using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tasks;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The one MsImageCandidate item: every metadata the README lists.</summary>
[TestClass]
public sealed class CandidateItemTests
{
    [TestMethod]
    public void The_item_has_every_metadata_the_readme_promises()
    {
        var build = new BuildDescription { ImageCandidate = "registry.example:5000/team/app:candidate-arm64", CorpusCommit = "abc123", Platform = "linux/arm64" };
        var item = CandidateItem.Create(build, "sha256:feed", 1234);
        Assert.AreEqual("registry.example:5000/team/app:candidate-arm64", item.ItemSpec);
        Assert.AreEqual("sha256:feed", item.GetMetadata("ImageId"));
        Assert.AreEqual("registry.example:5000/team/app", item.GetMetadata("Repository"));
        Assert.AreEqual("candidate-arm64", item.GetMetadata("Tag"));
        Assert.AreEqual("1234", item.GetMetadata("Size"));
        Assert.AreEqual("abc123", item.GetMetadata("CommitId"));
        Assert.AreEqual("linux/arm64", item.GetMetadata("Platform"));
        // The README's table lists exactly the metadata the item has.
        var row = File.ReadAllLines(Path.Combine(Support.Repository.Root, "README.md")).Single(l => l.StartsWith("| `MsImageCandidate` (output)", StringComparison.Ordinal));
        var documented = System.Text.RegularExpressions.Regex.Matches(row.Split('|')[2], "`([A-Za-z]+)`").Select(m => m.Groups[1].Value).ToList();
        CollectionAssert.AreEquivalent(item.CloneCustomMetadata().Keys.Cast<string>().ToList(), documented);
    }
}
