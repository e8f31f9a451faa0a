using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The digest of a push, as Podman states it (Docker also gives it in the push's aux data).</summary>
[TestClass]
public sealed class PushDigestTests
{
    [TestMethod]
    public void A_push_digest_stated_in_a_status_line_is_read_for_its_tag_only()
    {
        const string digest = "sha256:32e3f965addafee655e96111b4275e6d0eb3c1029de696ecaf72efdd3ed354c9";
        Assert.AreEqual(digest, RegistryPush.DigestInStatus($"candidate: digest: {digest} size: 739", "candidate"));
        Assert.IsNull(RegistryPush.DigestInStatus($"latest: digest: {digest} size: 739", "candidate"));
        Assert.IsNull(RegistryPush.DigestInStatus("The push refers to repository [127.0.0.1:5000/a/b:candidate]", "candidate"));
        Assert.IsNull(RegistryPush.DigestInStatus(null, "candidate"));
    }
}
