using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class ArchiveOutputTests
{
    private static readonly ImageReference Image = ImageReference.Parse("registry.example:5000/team/hello-systemd", "MsImage");
    private string _dir = "";

    [TestInitialize]
    public void Create() => _dir = Directory.CreateTempSubdirectory("archive-output-").FullName;

    [TestCleanup]
    public void Remove() => Directory.Delete(_dir, recursive: true);

    [TestMethod]
    public void A_folder_gets_the_image_name_and_a_file_is_taken_as_it_is()
    {
        Assert.IsNull(ArchiveOutput.Resolve("", "oci", Image, severalPlatforms: false), "no path, no archive");
        Assert.AreEqual(new ArchiveOutput(Path.Combine(_dir, "out", "hello-systemd.tar"), "oci"), ArchiveOutput.Resolve($"{_dir}/out/", "", Image, false));
        Assert.AreEqual(new ArchiveOutput(Path.Combine(_dir, "hello-systemd.tar"), "docker"), ArchiveOutput.Resolve(_dir, "Docker", Image, false), "an existing folder is a folder");
        Assert.AreEqual(new ArchiveOutput(Path.Combine(_dir, "a", "b", "image.oci.tar"), "oci"), ArchiveOutput.Resolve($"{_dir}/a/b/image.oci.tar", "oci", Image, true));
        Assert.IsFalse(Directory.Exists(Path.Combine(_dir, "a")), "resolving makes no folder");
    }

    [TestMethod]
    public void Bad_format_several_platforms_in_docker_and_a_file_in_the_way_are_coded()
    {
        Assert.AreEqual(MsiCodes.SettingChoiceInvalid, Assert.ThrowsExactly<ImageBuildException>(() => ArchiveOutput.Resolve($"{_dir}/x.tar", "tar", Image, false)).Code);
        Assert.AreEqual(MsiCodes.SettingChoiceInvalid, Assert.ThrowsExactly<ImageBuildException>(() => ArchiveOutput.Resolve("", "tar", Image, false)).Code,
            "a bad format is refused even without a path");
        Assert.AreEqual(MsiCodes.ArchiveFormatOnePlatform, Assert.ThrowsExactly<ImageBuildException>(() => ArchiveOutput.Resolve($"{_dir}/x.tar", "docker", Image, true)).Code);
        File.WriteAllText(Path.Combine(_dir, "file"), "");
        var inTheWay = Assert.ThrowsExactly<ImageBuildException>(() => ArchiveOutput.Resolve($"{_dir}/file/sub/x.tar", "oci", Image, false));
        Assert.AreEqual(MsiCodes.ArchivePathInvalid, inTheWay.Code);
        StringAssert.Contains(inTheWay.Message, $"'{_dir}/file' is a file");
        Directory.CreateDirectory(Path.Combine(_dir, "hello-systemd.tar"));
        Assert.AreEqual(MsiCodes.ArchivePathInvalid, Assert.ThrowsExactly<ImageBuildException>(() => ArchiveOutput.Resolve($"{_dir}/", "oci", Image, false)).Code,
            "the archive's own name is a folder");
    }
}
