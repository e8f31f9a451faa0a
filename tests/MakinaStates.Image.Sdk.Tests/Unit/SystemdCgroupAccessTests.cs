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
    public void Podman_on_cgroup_v2_gets_its_own_systemd_mode_and_on_v1_the_read_only_tree()
    {
        Assert.AreEqual(SystemdCgroupAccess.PodmanSystemdMode, SystemdCgroupAccessChoice.Choose("2", "1.41", podman: true));
        Assert.AreEqual(SystemdCgroupAccess.HostTreeReadOnly, SystemdCgroupAccessChoice.Choose("1", "1.41", podman: true));
        var host = Spec(SystemdCgroupAccess.PodmanSystemdMode).HostConfig!;
        Assert.AreEqual("private", host.CgroupnsMode);
        Assert.IsNull(host.Binds, "Podman mounts the container's own cgroup; the host's tree stays out");
        Assert.IsNull(host.SecurityOpt);
    }

    [TestMethod]
    public void A_rootless_engine_on_cgroup_v1_is_MSI0109_and_a_rootful_one_is_not()
    {
        var error = Assert.ThrowsExactly<MakinaStates.Image.Sdk.Diagnostics.ImageBuildException>(
            () => new EngineIdentity("Podman", "4.3.1", "1.41", "1", Rootless: true).ThrowIfRootlessWithoutCgroup());
        Assert.AreEqual("MSI0109", error.Code);
        StringAssert.Contains(error.Message, "cgroup v2");
        new EngineIdentity("Podman", "4.3.1", "1.41", "1", Rootless: false).ThrowIfRootlessWithoutCgroup();
        new EngineIdentity("Podman", "4.3.1", "1.41", "2", Rootless: true).ThrowIfRootlessWithoutCgroup();
    }

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
        // A user runs the candidate as the build ran it: each README line carries the flags of the stage containers the
        // SDK makes on that host (v1; v2 before Docker 28.0, API 1.48; v2 from 28.0), as SystemdContainerSpec makes them.
        var lines = File.ReadAllLines(Path.Combine(Support.Repository.Root, "README.md")).Where(l => l.StartsWith("docker run -d ", StringComparison.Ordinal)).ToList();
        var hosts = new[] { ("1", "1.41"), ("2", "1.47"), ("2", "1.48") };
        Assert.AreEqual(hosts.Length, lines.Count, string.Join("\n", lines));
        foreach (var (line, (cgroup, api)) in lines.Zip(hosts))
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.AreEqual("mycompany/hello:candidate", words[^1], line);
            var expected = RunFlags(Spec(SystemdCgroupAccessChoice.Choose(cgroup, api)));
            CollectionAssert.AreEquivalent(expected, Flags(words[3..^1]), $"cgroup v{cgroup}, API {api}: the README says\n{line}\nthe SDK runs\n{string.Join(' ', expected)}");
        }
    }

    /// <summary>A stage container's host config as `docker run` flags; fails on a setting it cannot write (a new one in the spec).</summary>
    private static List<string> RunFlags(Docker.DotNet.Models.CreateContainerParameters container)
    {
        var host = container.HostConfig!;
        // Tmpfs mount options are the engine's defaults on a command line: the paths are what matters.
        List<string> flags = [.. (host.Tmpfs ?? new Dictionary<string, string>()).Keys.Select(path => $"--tmpfs {path}")];
        if (host.CgroupnsMode is { Length: > 0 } cgroupns)
        {
            flags.Add($"--cgroupns={cgroupns}");
        }
        flags.AddRange((host.Binds ?? []).Select(bind => $"-v {bind}"));
        flags.AddRange((host.SecurityOpt ?? []).Select(option => $"--security-opt {option}"));
        var written = new[] { nameof(host.Tmpfs), nameof(host.CgroupnsMode), nameof(host.Binds), nameof(host.SecurityOpt) };
        var unset = new Docker.DotNet.Models.HostConfig();
        foreach (var property in typeof(Docker.DotNet.Models.HostConfig).GetProperties().Where(p => !written.Contains(p.Name)))
        {
            Assert.AreEqual(property.GetValue(unset), property.GetValue(host), $"the stage container sets {property.Name}, which this test cannot write as a flag");
        }
        return flags;
    }

    /// <summary>A command line's flags, each with its value ("-v a:b", "--cgroupns=host").</summary>
    private static List<string> Flags(string[] words)
    {
        var flags = new List<string>();
        for (var i = 0; i < words.Length; i++)
        {
            flags.Add(words[i].Contains('=', StringComparison.Ordinal) || i + 1 == words.Length ? words[i] : $"{words[i]} {words[++i]}");
        }
        return flags;
    }

    private static Docker.DotNet.Models.CreateContainerParameters Spec(SystemdCgroupAccess access) =>
        SystemdContainerSpec.Create("image", "name", ["/sbin/init"], new Dictionary<string, string>(), access);
}
