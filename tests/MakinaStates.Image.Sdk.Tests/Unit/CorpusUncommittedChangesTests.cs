using MakinaStates.Image.Sdk.Scripts;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>MSI0014's list: what is not deployed, without what builds write into the clone or what git ignores.</summary>
[TestClass]
public sealed class CorpusUncommittedChangesTests
{
    private string _clone = "";

    [TestInitialize]
    public void Create() => _clone = Directory.CreateTempSubdirectory("corpus-").FullName;

    [TestCleanup]
    public void Remove() => Directory.Delete(_clone, recursive: true);

    private void Git(params string[] arguments) =>
        HostProcess.RunIn(_clone, "git", ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "init.defaultBranch=main", .. arguments]);

    private void Put(string relative, string content)
    {
        var path = Path.Combine(_clone, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    [TestMethod]
    public void Changes_leave_out_what_the_sdk_wrote_and_what_git_ignores()
    {
        Put(".gitignore", "*.log\n");
        Put("www/index.html", "v1");
        Put("www/old name.html", "renamed");
        Put("obj/msimage/build.json", "committed by a user who ran git add -A after a build");
        Git("init", "-q");
        Git("add", "-A");
        Git("commit", "-qm", "first");

        Put("www/index.html", "v2");
        Put("www/new file.txt", "untracked, with a space");
        Git("mv", "www/old name.html", "www/renamed.html");
        Put("build.log", "ignored by git");
        Put("obj/msimage/build.json", "rewritten by the next build");
        Put("obj/msimage/content-hashes.tsv", "new");
        Put("injected_volumes/bootstrap_scripts/stage1.sh", "Stage0's copy");
        Put("injected_volumes/bootstrap_scripts/.makinastates-generated", "stage1.sh 00");
        Put("injected_volumes/bootstrap_scripts/mine.sh", "the user's own file there");

        var written = new[]
        {
            Path.Combine(_clone, "obj") + "/",
            Path.Combine(_clone, "injected_volumes/bootstrap_scripts/stage1.sh"),
            Path.Combine(_clone, "injected_volumes/bootstrap_scripts/.makinastates-generated"),
            "/elsewhere/data/",
        };
        CollectionAssert.AreEquivalent(
            new[] { "www/index.html", "www/new file.txt", "www/renamed.html", "injected_volumes/bootstrap_scripts/mine.sh" },
            CorpusProject.UncommittedChanges(_clone, written).ToArray());
    }
}
