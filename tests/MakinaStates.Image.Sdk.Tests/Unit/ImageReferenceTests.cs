using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class ImageReferenceTests
{
    [TestMethod]
    [DataRow("mycompany/hello", "mycompany/hello", null)]
    [DataRow("mycompany/hello:1.2.3", "mycompany/hello", "1.2.3")]
    [DataRow("hello", "hello", null)]
    [DataRow("127.0.0.1:5000/team/app:latest", "127.0.0.1:5000/team/app", "latest")]
    [DataRow("localhost/app", "localhost/app", null)]
    [DataRow("my_company/hello-world.v2", "my_company/hello-world.v2", null)]
    public void Parses_valid_references(string value, string repository, string? tag)
    {
        var reference = ImageReference.Parse(value, "MsImage");
        Assert.AreEqual(repository, reference.Repository);
        Assert.AreEqual(tag, reference.Tag);
        Assert.AreEqual($"{repository}:candidate", reference.WithTag("candidate"));
    }

    [TestMethod]
    [DataRow("MyCompany/Hello")]
    [DataRow("my company/hello")]
    [DataRow("mycompany/hello:")]
    [DataRow("mycompany/hello:bad tag")]
    [DataRow("mycompany//hello")]
    [DataRow("-hello")]
    [DataRow("mycompany/hello:-x")]
    public void Rejects_invalid_references_with_a_code_naming_the_setting(string value)
    {
        var error = Assert.ThrowsExactly<ImageBuildException>(() => ImageReference.Parse(value, "MsImage"));
        Assert.AreEqual(MsiCodes.ImageInvalid, error.Code);
        StringAssert.Contains(error.Message, "MsImage");
        StringAssert.Contains(error.Message, value);
    }

    [TestMethod]
    [DataRow(null)]
    [DataRow("")]
    [DataRow("   ")]
    public void Missing_image_is_its_own_error(string? value)
    {
        var error = Assert.ThrowsExactly<ImageBuildException>(() => ImageReference.Parse(value, "MsImage"));
        Assert.AreEqual(MsiCodes.ImageMissing, error.Code);
        StringAssert.Contains(error.Message, "MS_IMAGE");
    }

    [TestMethod]
    [DataRow("mycompany/hello", null, "mycompany/hello")]
    [DataRow("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app")]
    [DataRow("registry.example.org/app", "registry.example.org", "app")]
    [DataRow("localhost/app", "localhost", "app")]
    [DataRow("hello", null, "hello")]
    public void The_registry_is_the_first_component_only_when_docker_says_so(string value, string? registry, string path)
    {
        var reference = ImageReference.Parse(value, "MsImage");
        Assert.AreEqual(registry, reference.Registry);
        Assert.AreEqual(path, reference.PathInRegistry);
    }
}
