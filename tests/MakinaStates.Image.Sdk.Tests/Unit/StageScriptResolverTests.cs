using MakinaStates.Image.Sdk.Scripts;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class StageScriptResolverTests
{
    private string _root = "";
    private string _image = "";
    private string _sdk = "";
    private string _stagePath = "";

    [TestInitialize]
    public void Create()
    {
        _root = Directory.CreateTempSubdirectory("scripts-").FullName;
        _image = Directory.CreateDirectory(Path.Combine(_root, "image")).FullName;
        _sdk = Directory.CreateDirectory(Path.Combine(_root, "sdk")).FullName;
        _stagePath = Directory.CreateDirectory(Path.Combine(_root, "stagepath")).FullName;
        File.WriteAllText(Path.Combine(_sdk, "stage3.sh"), "sdk");
    }

    [TestCleanup]
    public void Remove() => Directory.Delete(_root, recursive: true);

    private void Put(string folder, string content)
    {
        var dir = Path.Combine(_image, folder);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "stage3.sh"), content);
    }

    private string Winner() => File.ReadAllText(new StageScriptResolver(_image, _stagePath, _sdk).Resolve("stage3.sh").Path);

    [TestMethod]
    public void Precedence_is_salt_then_image_rootfs_then_injected_volumes_then_stage_path_then_sdk()
    {
        Assert.AreEqual("sdk", Winner());
        File.WriteAllText(Path.Combine(_stagePath, "stage3.sh"), "stagepath");
        Assert.AreEqual("stagepath", Winner());
        Put("injected_volumes/bootstrap_scripts", "injected");
        Assert.AreEqual("injected", Winner());
        Put("image_rootfs/bootstrap_scripts", "rootfs");
        Assert.AreEqual("rootfs", Winner());
        Put(".salt", "salt");
        Assert.AreEqual("rootfs", Winner(), ".salt/ counts only in a corpus project (.git beside it)");
        Directory.CreateDirectory(Path.Combine(_image, ".git"));
        Assert.AreEqual("salt", Winner());
    }

    [TestMethod]
    public void Placed_copies_are_not_taken_for_overrides_next_time()
    {
        var resolver = new StageScriptResolver(_image, null, _sdk);
        resolver.PlaceEffectiveScripts(resolver.ResolveAll());
        Assert.AreEqual("sdk", File.ReadAllText(Path.Combine(resolver.BootstrapScriptsDirectory, "stage3.sh")));

        // A newer SDK default wins over our own earlier copy...
        File.WriteAllText(Path.Combine(_sdk, "stage3.sh"), "sdk v2");
        Assert.AreEqual("the SDK's stage-scripts/", resolver.Resolve("stage3.sh").Origin);
        // ...but a user's edit of that copy is an override.
        File.WriteAllText(Path.Combine(resolver.BootstrapScriptsDirectory, "stage3.sh"), "edited by the user");
        Assert.AreEqual("injected_volumes/bootstrap_scripts/", resolver.Resolve("stage3.sh").Origin);
    }

    private string Placed(string name) => File.ReadAllText(Path.Combine(_image, "injected_volumes", "bootstrap_scripts", name));

    private void PutFile(string relative, string content)
    {
        var path = Path.Combine(_image, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    private IReadOnlyList<StageScriptResolver.ResolvedScript> Place()
    {
        var resolver = new StageScriptResolver(_image, _stagePath, _sdk);
        return resolver.PlaceEffectiveScripts(resolver.ResolveAll());
    }

    [TestMethod]
    public void Every_file_at_any_depth_is_placed_merged_file_by_file_with_the_same_precedence()
    {
        PutFile("image_rootfs/bootstrap_scripts/lib/helper.sh", "rootfs helper");
        PutFile("image_rootfs/bootstrap_scripts/data/.greeting", "rootfs dotfile");
        PutFile("injected_volumes/bootstrap_scripts/lib/helper.sh", "injected helper");
        PutFile("injected_volumes/bootstrap_scripts/lib/other.sh", "injected other");
        File.WriteAllText(Path.Combine(_stagePath, "extra.conf"), "stage path data");
        var placed = Place();
        Assert.AreEqual("rootfs helper", Placed("lib/helper.sh"));
        Assert.AreEqual("injected other", Placed("lib/other.sh"), "folders merge file by file");
        Assert.AreEqual("rootfs dotfile", Placed("data/.greeting"));
        Assert.AreEqual("stage path data", Placed("extra.conf"));
        Assert.AreEqual("sdk", Placed("stage3.sh"));
        CollectionAssert.IsSubsetOf(new[] { "data/.greeting", "extra.conf", "lib/helper.sh", "lib/other.sh", "stage3.sh" }, placed.Select(p => p.Name).ToArray());
        Assert.IsTrue(File.GetUnixFileMode(Path.Combine(_image, "injected_volumes/bootstrap_scripts/lib/helper.sh")).HasFlag(UnixFileMode.UserExecute));
    }

    [TestMethod]
    public void A_removed_nested_helper_is_removed_with_its_folder_and_a_users_own_file_stays_theirs()
    {
        PutFile("image_rootfs/bootstrap_scripts/lib/deep/helper.sh", "v1");
        PutFile("injected_volumes/bootstrap_scripts/mine.sh", "the user's own");
        Place();
        Assert.AreEqual("v1", Placed("lib/deep/helper.sh"));
        File.Delete(Path.Combine(_image, "image_rootfs/bootstrap_scripts/lib/deep/helper.sh"));
        Place();
        Assert.IsFalse(Directory.Exists(Path.Combine(_image, "injected_volumes/bootstrap_scripts/lib")), "the copy and its emptied folders go");
        // Placed twice: a user's file in injected_volumes/bootstrap_scripts/ is never taken for Stage0's copy.
        Place();
        Assert.AreEqual("the user's own", Placed("mine.sh"));
        Assert.AreEqual("injected_volumes/bootstrap_scripts/", new StageScriptResolver(_image, _stagePath, _sdk).Resolve("mine.sh").Origin);
    }

    [TestMethod]
    public void A_users_edit_of_a_placed_copy_stays_an_override_build_after_build()
    {
        Place();
        File.WriteAllText(Path.Combine(_image, "injected_volumes/bootstrap_scripts/stage3.sh"), "edited by the user");
        Place();
        Place();
        Assert.AreEqual("edited by the user", Placed("stage3.sh"));
    }

    [TestMethod]
    public void Stage1_uses_from_salt_only_its_own_files_and_shell_scripts_and_every_other_placed_file()
    {
        File.WriteAllText(Path.Combine(_sdk, "stage1.sh"), "sdk stage1");
        File.WriteAllText(Path.Combine(_sdk, "makinastates-acl-restore.service"), "sdk unit");
        Directory.CreateDirectory(Path.Combine(_image, ".git"));
        PutFile(".salt/stage1.sh", "salt stage1");
        PutFile(".salt/makinastates-acl-restore.service", "salt unit");
        PutFile(".salt/lib/helper.sh", "sourced by stage1.sh");
        PutFile(".salt/stage3.sh", "salt stage3");
        PutFile(".salt/pillar.sls", "a pillar");
        PutFile(".salt/states/app.sls", "a state");
        PutFile("image_rootfs/bootstrap_scripts/data/list.txt", "data of the user's stage1.sh");
        var resolver = new StageScriptResolver(_image, _stagePath, _sdk);
        var used = resolver.UsedByStage1(resolver.PlaceEffectiveScripts(resolver.ResolveAll()));
        CollectionAssert.AreEquivalent(new[] { "data/list.txt", "lib/helper.sh", "makinastates-acl-restore.service", "stage1.sh" }, used.ToArray());
        // Still placed: the pillars and states are in the candidate's inputs key with every placed file.
        Assert.AreEqual("a pillar", Placed("pillar.sls"));
    }

    [TestMethod]
    public void Salt_without_git_is_told_apart_from_a_corpus_project()
    {
        var resolver = new StageScriptResolver(_image, _stagePath, _sdk);
        Assert.IsFalse(resolver.HasSaltWithoutGit);
        PutFile(".salt/stage3.sh", "salt");
        Assert.IsTrue(resolver.HasSaltWithoutGit);
        Assert.IsFalse(resolver.IsCorpusProject);
        // A clone's .git may be a file (a worktree, a submodule).
        File.WriteAllText(Path.Combine(_image, ".git"), "gitdir: elsewhere\n");
        Assert.IsFalse(resolver.HasSaltWithoutGit);
        Assert.IsTrue(resolver.IsCorpusProject);
    }
}
