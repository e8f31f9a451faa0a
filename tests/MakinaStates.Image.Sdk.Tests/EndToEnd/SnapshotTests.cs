using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// MsDoSnapshot=yes strips what the build generated or what identifies one machine; =no keeps it. stage3.sh makes
/// each item and asserts it exists (the "before"); the committed image is then read without booting it (the "after").
/// Nothing the user injected is stripped: preconfigured pillars stay, and an injected authorized_keys is kept and named.
/// </summary>
[TestClass]
public sealed class SnapshotTests
{
    private const string MakeEverything = """
        #!/bin/bash
        set -euo pipefail
        echo 0123456789abcdef0123456789abcdef > /etc/machine-id
        mkdir -p /etc/ssh /root/.ssh /etc/salt/pki/minion /srv/pillar /var/cache/apt/archives /var/lib/apt/lists
        echo host-key > /etc/ssh/ssh_host_ed25519_key
        echo ssh-ed25519 AAAA user@build > /root/.ssh/authorized_keys
        echo build-host ssh-ed25519 AAAA > /root/.ssh/known_hosts
        echo 'secret command' > /root/.bash_history
        echo 'build log line' > /var/log/makinastates-build.log
        echo junk > /tmp/build-junk
        echo deb > /var/cache/apt/archives/thing.deb
        echo list > /var/lib/apt/lists/mirror_Packages
        echo minion-key > /etc/salt/pki/minion/minion.pem
        echo 'password: hunter2' > /srv/pillar/secret.sls
        # The "before": everything is there when stage3 ends.
        for f in /etc/ssh/ssh_host_ed25519_key /root/.ssh/authorized_keys /root/.bash_history /var/log/makinastates-build.log \
                 /tmp/build-junk /var/cache/apt/archives/thing.deb /var/lib/apt/lists/mirror_Packages \
                 /etc/salt/pki/minion/minion.pem /srv/pillar/secret.sls; do test -s "$f"; done
        test -s /etc/machine-id
        """;

    private static async Task<(Dictionary<string, string?> Files, DotnetBuild Build)> BuildAndReadAsync(string doSnapshot)
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-snapshot-{doSnapshot}-{Guid.NewGuid():N}"[..44];
        using var project = new ImageProject(image);
        project.Write("image_rootfs/bootstrap_scripts/stage3.sh", MakeEverything, executable: true);
        project.Write("injected_volumes/home/deploy/.ssh/authorized_keys", "ssh-ed25519 AAAA deploy@ci\n");
        project.Write("injected_volumes/srv/pillar/init.sls", "preconfigured: pillar\n");
        project.Write("injected_volumes/etc/salt/pki/minion/minion_master.pub", "injected master key\n");
        try
        {
            // The list of injected paths is there whatever MsExposeInjectedVolumes says.
            var build = await project.BuildAsync($"-p:MsDoSnapshot={doSnapshot}", "-p:MsExposeInjectedVolumes=false");
            Assert.IsTrue(build.Succeeded, build.Output);
            var files = new Dictionary<string, string?>();
            foreach (var path in new[]
            {
                "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key", "/root/.ssh/authorized_keys", "/root/.ssh/known_hosts",
                "/root/.bash_history", "/var/log/makinastates-build.log", "/tmp/build-junk", "/var/cache/apt/archives/thing.deb",
                "/var/lib/apt/lists/mirror_Packages", "/etc/salt/pki/minion/minion.pem", "/srv/pillar/secret.sls",
                "/etc/systemd/system/makinastates-ssh-hostkeys.service", "/home/deploy/.ssh/authorized_keys", "/srv/pillar/init.sls",
                "/etc/salt/pki/minion/minion_master.pub",
            })
            {
                files[path] = await TestDocker.ReadFileFromImageAsync(docker, $"{image}:candidate", path);
            }
            return (files, build);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    [TestMethod]
    public async Task Snapshot_strips_identity_keys_histories_logs_caches_and_salt_keys_but_nothing_injected()
    {
        var (after, build) = await BuildAndReadAsync("yes");
        Assert.AreEqual("", after["/etc/machine-id"], "machine-id must be empty (made at each container's first boot)");
        Assert.IsNull(after["/etc/ssh/ssh_host_ed25519_key"], "SSH host keys must be removed");
        StringAssert.Contains(after["/etc/systemd/system/makinastates-ssh-hostkeys.service"], "ssh-keygen -A", "host keys are made again at first boot");
        Assert.AreEqual("", after["/root/.ssh/authorized_keys"]);
        Assert.AreEqual("", after["/root/.ssh/known_hosts"]);
        Assert.AreEqual("", after["/root/.bash_history"]);
        Assert.AreEqual("", after["/var/log/makinastates-build.log"], "logs are truncated, not removed");
        Assert.IsNull(after["/tmp/build-junk"]);
        Assert.IsNull(after["/var/cache/apt/archives/thing.deb"]);
        Assert.IsNull(after["/var/lib/apt/lists/mirror_Packages"]);
        Assert.IsNull(after["/etc/salt/pki/minion/minion.pem"]);
        // Pillars are the image's configuration (the seed's preconfigured pillars): secrets belong in MsSecret.
        Assert.AreEqual("password: hunter2\n", after["/srv/pillar/secret.sls"]);
        Assert.AreEqual("preconfigured: pillar\n", after["/srv/pillar/init.sls"]);
        Assert.AreEqual("ssh-ed25519 AAAA deploy@ci\n", after["/home/deploy/.ssh/authorized_keys"]);
        Assert.AreEqual("injected master key\n", after["/etc/salt/pki/minion/minion_master.pub"]);
        StringAssert.Contains(build.Output, "snapshot: kept /home/deploy/.ssh/authorized_keys: it was injected");
        StringAssert.Contains(build.Output, "snapshot: kept /etc/salt/pki/minion/minion_master.pub: it was injected");
    }

    [TestMethod]
    public async Task No_snapshot_keeps_everything()
    {
        var (after, _) = await BuildAndReadAsync("no");
        Assert.AreEqual("0123456789abcdef0123456789abcdef\n", after["/etc/machine-id"]);
        Assert.AreEqual("host-key\n", after["/etc/ssh/ssh_host_ed25519_key"]);
        Assert.IsNull(after["/etc/systemd/system/makinastates-ssh-hostkeys.service"]);
        Assert.AreEqual("secret command\n", after["/root/.bash_history"]);
        Assert.AreEqual("build log line\n", after["/var/log/makinastates-build.log"]);
        Assert.AreEqual("junk\n", after["/tmp/build-junk"]);
        Assert.AreEqual("deb\n", after["/var/cache/apt/archives/thing.deb"]);
        Assert.AreEqual("minion-key\n", after["/etc/salt/pki/minion/minion.pem"]);
        Assert.AreEqual("password: hunter2\n", after["/srv/pillar/secret.sls"]);
    }
}
