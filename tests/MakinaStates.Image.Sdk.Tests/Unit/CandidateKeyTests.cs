using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The alias a cold build records: the same candidate, keyed with the base tarball it wrote.</summary>
[TestClass]
public sealed class CandidateKeyTests
{
    [TestMethod]
    public void The_alias_is_the_key_with_the_written_base_for_that_candidate_only()
    {
        var text = "sdk=1\nplatform=linux/arm64\n" + CandidateKey.Line("missing") + "tree=abc\n";
        var written = CandidateKey.WithBase(text, "missing", "f00d");
        Assert.AreEqual("sdk=1\nplatform=linux/arm64\nbase=f00d\ntree=abc\n", written);
        Assert.AreNotEqual(CandidateKey.Of(text), CandidateKey.Of(written));

        var directory = Directory.CreateTempSubdirectory("candidate-key-").FullName;
        try
        {
            Assert.IsFalse(CandidateKey.IsAlias(directory, "sha256:1", CandidateKey.Of(written)), "no alias recorded yet");
            CandidateKey.WriteAlias(directory, "sha256:1", CandidateKey.Of(written));
            Assert.IsTrue(CandidateKey.IsAlias(directory, "sha256:1", CandidateKey.Of(written)));
            Assert.IsFalse(CandidateKey.IsAlias(directory, "sha256:2", CandidateKey.Of(written)), "another candidate image");
            Assert.IsFalse(CandidateKey.IsAlias(directory, "sha256:1", CandidateKey.Of(text)), "another key");
            Assert.IsFalse(CandidateKey.IsAlias("", "sha256:1", CandidateKey.Of(written)), "no obj/ folder");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
