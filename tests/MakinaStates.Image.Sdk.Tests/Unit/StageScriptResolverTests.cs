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
}
