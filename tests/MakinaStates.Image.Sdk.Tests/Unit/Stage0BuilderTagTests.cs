using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The shared stage0 builder's default name: the OS, the release and the Dockerfile's content.</summary>
[TestClass]
public sealed class Stage0BuilderTagTests
{
    [TestMethod]
    public void The_default_tag_is_named_after_the_os_the_release_and_the_Dockerfiles_content_not_its_path()
    {
        var root = Directory.CreateTempSubdirectory("stage0-tag-").FullName;
        try
        {
            var one = Path.Combine(root, "one.Dockerfile");
            var other = Path.Combine(root, "other.Dockerfile");
            File.WriteAllText(one, "FROM debian:bookworm\n");
            File.WriteAllText(other, "FROM debian:bookworm\n");
            var tag = Stage0Builder.DefaultTag("Debian", "bookworm", one);
            StringAssert.Matches(tag, new System.Text.RegularExpressions.Regex("^makinastates/stage0-debian-bookworm:[0-9a-f]{16}$"));
            Assert.AreEqual(tag, Stage0Builder.DefaultTag("debian", "bookworm", other), "the same content is the same builder");
            File.AppendAllText(other, "RUN true\n");
            Assert.AreNotEqual(tag, Stage0Builder.DefaultTag("debian", "bookworm", other));
            Assert.AreNotEqual(tag, Stage0Builder.DefaultTag("debian", "trixie", one));
            Assert.AreEqual(Path.Combine("/x/bootstrap_scripts", "Dockerfile.stage0"), Stage0Builder.Dockerfile(" ", "/x/bootstrap_scripts"));
            Assert.AreEqual(one, Stage0Builder.Dockerfile(one, "/x/bootstrap_scripts"));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
