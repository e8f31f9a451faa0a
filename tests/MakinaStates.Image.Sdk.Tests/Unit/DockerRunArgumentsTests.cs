using Docker.DotNet.Models;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class DockerRunArgumentsTests
{
    [TestMethod]
    public void Every_supported_flag_is_parsed_with_shell_quoting_and_applied()
    {
        var parsed = DockerRunArguments.Parse(
            "-e 'A=b c' --env=D=e -v /host:/in:ro --volume=/h2:/i2 --tmpfs /scratch:size=64m --cap-add SYS_PTRACE --cap-drop=NET_RAW " +
            "--security-opt seccomp=unconfined --privileged --network host --add-host db:127.0.0.1 --dns 127.0.0.53 -m 2g --cpus 1.5 " +
            "-l team=\"ops people\" --label=x --ulimit nofile=1024:2048 --device /dev/fuse");
        var container = new CreateContainerParameters { Labels = new Dictionary<string, string> { ["io.makinastates.build-id"] = "mine" } };
        parsed.ApplyTo(container);
        var host = container.HostConfig!;

        CollectionAssert.AreEqual(new[] { "A=b c", "D=e" }, parsed.Environment);
        Assert.IsNull(container.Env, "-e values go to the scripts, not to the container (commit would bake them in)");
        CollectionAssert.AreEqual(new[] { "/host:/in:ro", "/h2:/i2" }, host.Binds!.ToArray());
        Assert.AreEqual("size=64m", host.Tmpfs!["/scratch"]);
        CollectionAssert.AreEqual(new[] { "SYS_PTRACE" }, host.CapAdd!.ToArray());
        CollectionAssert.AreEqual(new[] { "NET_RAW" }, host.CapDrop!.ToArray());
        CollectionAssert.AreEqual(new[] { "seccomp=unconfined" }, host.SecurityOpt!.ToArray());
        Assert.IsTrue(host.Privileged);
        Assert.AreEqual("host", host.NetworkMode);
        CollectionAssert.AreEqual(new[] { "db:127.0.0.1" }, host.ExtraHosts!.ToArray());
        CollectionAssert.AreEqual(new[] { "127.0.0.53" }, host.DNS!.ToArray());
        Assert.AreEqual(2L << 30, host.Memory);
        Assert.AreEqual(1_500_000_000L, host.NanoCPUs);
        Assert.AreEqual("ops people", container.Labels["team"]);
        Assert.AreEqual("", container.Labels["x"]);
        Assert.AreEqual("mine", container.Labels["io.makinastates.build-id"], "the SDK's own labels stay");
        Assert.AreEqual(("nofile", 1024L, 2048L), (host.Ulimits![0].Name, host.Ulimits[0].Soft, host.Ulimits[0].Hard));
        Assert.AreEqual(("/dev/fuse", "/dev/fuse", "rwm"), (host.Devices![0].PathOnHost, host.Devices[0].PathInContainer, host.Devices[0].CgroupPermissions));
    }

    [TestMethod]
    [DataRow("--pid host", "'--pid'")]
    [DataRow("-d", "'-d'")]
    [DataRow("-e", "needs a value")]
    [DataRow("--memory lots", "--memory 'lots'")]
    [DataRow("--cpus -1", "--cpus '-1'")]
    [DataRow("--ulimit nofile", "name=soft[:hard]")]
    [DataRow("-e 'unterminated", "cannot be split")]
    [DataRow("-v /var/run/docker.sock:/var/run/docker.sock", "socket")]
    public void Bad_flags_are_MSI0011_saying_what_is_wrong(string text, string expected)
    {
        var error = Assert.ThrowsExactly<ImageBuildException>(() => DockerRunArguments.Parse(text));
        Assert.AreEqual(MsiCodes.DockerArgsInvalid, error.Code);
        StringAssert.Contains(error.Message, expected);
    }

    [TestMethod]
    public void Seed_habits_are_accepted_and_left_to_the_sdk_and_a_volume_at_docker_data_names_the_data_dir()
    {
        var parsed = DockerRunArguments.Parse("-ti --rm -it -t -i --rm=true -e MS_BASE=a/b -v ./seed-data:/docker/data:rw -v /h:/docker/data2");
        CollectionAssert.AreEqual(new[] { "-ti", "--rm", "-it", "-t", "-i", "--rm=true" }, parsed.ManagedBySdk);
        CollectionAssert.AreEqual(new[] { "MS_BASE=a/b" }, parsed.Environment, "an -e MS_* still reaches the scripts");
        Assert.AreEqual("./seed-data", parsed.DataDirectory);
        var container = new CreateContainerParameters();
        parsed.ApplyTo(container);
        CollectionAssert.AreEqual(new[] { "/h:/docker/data2" }, container.HostConfig!.Binds!.ToArray(),
            "the SDK mounts the data dir itself: a bind at /docker/data would clash with its /docker/data link");
    }

    [TestMethod]
    public void Empty_is_nothing()
    {
        var parsed = DockerRunArguments.Parse("");
        Assert.AreEqual(0, parsed.Environment.Count);
        Assert.IsFalse(parsed.Privileged);
    }
}
