using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>How a stage container gives systemd its cgroup, per engine generation (both cannot run on one machine).</summary>
[TestClass]
public sealed class SystemdCgroupAccessTests
{
    [TestMethod]
    [DataRow("1", "1.41", SystemdCgroupAccess.HostTreeReadOnly)]
    [DataRow("1", "1.48", SystemdCgroupAccess.HostTreeReadOnly)]
    [DataRow("", "1.41", SystemdCgroupAccess.HostTreeReadOnly)]
    [DataRow("2", "1.41", SystemdCgroupAccess.HostTreeReadWrite)]
    [DataRow("2", "1.47", SystemdCgroupAccess.HostTreeReadWrite)]
    [DataRow("2", "", SystemdCgroupAccess.HostTreeReadWrite)]
    [DataRow("2", "1.48", SystemdCgroupAccess.PrivateWritable)]
    [DataRow("2", "1.51", SystemdCgroupAccess.PrivateWritable)]
    public void Choice_follows_the_cgroup_version_and_the_engine_api(string cgroupVersion, string apiVersion, SystemdCgroupAccess expected) =>
        Assert.AreEqual(expected, SystemdCgroupAccessChoice.Choose(cgroupVersion, apiVersion));

    [TestMethod]
    public void Cgroup_v1_binds_the_hierarchy_read_only()
    {
        var host = Spec(SystemdCgroupAccess.HostTreeReadOnly).HostConfig!;
        CollectionAssert.AreEqual(new[] { "/sys/fs/cgroup:/sys/fs/cgroup:ro" }, host.Binds!.ToArray());
        Assert.IsNull(host.SecurityOpt);
        Assert.IsFalse(host.Privileged);
    }

    [TestMethod]
    public void Docker_28_on_cgroup_v2_gets_a_private_writable_namespace_and_no_host_bind()
    {
        var host = Spec(SystemdCgroupAccess.PrivateWritable).HostConfig!;
        Assert.AreEqual("private", host.CgroupnsMode);
        CollectionAssert.AreEqual(new[] { "writable-cgroups=true" }, host.SecurityOpt!.ToArray());
        Assert.IsNull(host.Binds, "the host's cgroup tree must not be visible");
        Assert.IsFalse(host.Privileged);
    }

    [TestMethod]
    public void Older_engines_on_cgroup_v2_bind_the_tree_read_write_in_the_hosts_namespace()
    {
        // In a private namespace systemd would take the host's root init.scope (seen on Docker 20.10): host it is.
        var host = Spec(SystemdCgroupAccess.HostTreeReadWrite).HostConfig!;
        Assert.AreEqual("host", host.CgroupnsMode);
        CollectionAssert.AreEqual(new[] { "/sys/fs/cgroup:/sys/fs/cgroup:rw" }, host.Binds!.ToArray());
        Assert.IsNull(host.SecurityOpt);
        Assert.IsFalse(host.Privileged);
    }

    [TestMethod]
    public void Every_stage_container_has_a_tty_for_systemds_console()
    {
        foreach (var access in Enum.GetValues<SystemdCgroupAccess>())
        {
            Assert.IsTrue(Spec(access).Tty, $"{access}: without a tty systemd's boot errors reach no log");
        }
    }

    [TestMethod]
    public void A_users_cgroup_volume_replaces_the_sdks_own_bind()
    {
        // The workaround v2 users had before this release must keep working, not become a duplicate mount point.
        var container = Spec(SystemdCgroupAccess.HostTreeReadWrite);
        DockerRunArguments.Parse("-v /sys/fs/cgroup:/sys/fs/cgroup:ro -v /data:/data").ApplyTo(container);
        CollectionAssert.AreEqual(new[] { "/sys/fs/cgroup:/sys/fs/cgroup:ro", "/data:/data" }, container.HostConfig!.Binds!.ToArray());
    }

    [TestMethod]
    public void Console_text_drops_colours_and_carriage_returns()
    {
        Assert.AreEqual("Failed to allocate manager object: Read-only file system",
            SystemdBoot.ConsoleText("\u001b[0;1;31mFailed to allocate manager object: Read-only file system\u001b[0m\r"));
    }

    [TestMethod]
    public void The_readmes_run_lines_use_the_stage_containers_flags()
    {
        // A user runs the candidate as the build ran it: the three README lines carry the same cgroup flags.
        var lines = File.ReadAllLines(Path.Combine(Support.Repository.Root, "README.md")).Where(l => l.StartsWith("docker run -d ", StringComparison.Ordinal)).ToList();
        Assert.AreEqual(3, lines.Count, string.Join("\n", lines));
        StringAssert.Contains(lines[0], "-v /sys/fs/cgroup:/sys/fs/cgroup:ro");
        StringAssert.Contains(lines[1], "--cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw");
        StringAssert.Contains(lines[2], "--cgroupns=private --security-opt writable-cgroups=true");
        Assert.IsTrue(lines.All(l => l.Contains("--tmpfs /run --tmpfs /run/lock", StringComparison.Ordinal)));
    }

    private static Docker.DotNet.Models.CreateContainerParameters Spec(SystemdCgroupAccess access) =>
        SystemdContainerSpec.Create("image", "name", ["/sbin/init"], new Dictionary<string, string>(), access);
}
