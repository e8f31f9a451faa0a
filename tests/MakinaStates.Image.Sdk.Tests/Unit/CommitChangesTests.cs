using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Engine;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The commit config as Dockerfile changes, which is all Podman's compatible commit applies.</summary>
[TestClass]
public sealed class CommitChangesTests
{
    [TestMethod]
    public void Every_config_field_the_sdk_commits_becomes_one_quoted_change()
    {
        var changes = CommitChanges.From(new CommitContainerChangesParameters
        {
            Cmd = ["/usr/bin/sleep", "infinity"],
            StopSignal = "SIGRTMIN+3",
            Env = ["container=docker", "GREETING=say \"hi\" $HOME"],
            Labels = new Dictionary<string, string> { ["io.makinastates.build-id"] = "", ["org.opencontainers.image.description"] = "two\nlines" },
            ExposedPorts = new Dictionary<string, EmptyStruct> { ["8080/tcp"] = default },
            Volumes = new Dictionary<string, EmptyStruct> { ["/srv/data"] = default },
        });
        CollectionAssert.AreEqual(new[]
        {
            "CMD [\"/usr/bin/sleep\",\"infinity\"]",
            "STOPSIGNAL SIGRTMIN+3",
            "ENV \"container\"=\"docker\"",
            "ENV \"GREETING\"=\"say \\\"hi\\\" \\$HOME\"",
            "LABEL \"io.makinastates.build-id\"=\"\"",
            "LABEL \"org.opencontainers.image.description\"=\"two lines\"",
            "EXPOSE 8080/tcp",
            "VOLUME [\"/srv/data\"]",
        }, changes.ToArray());
    }
}
