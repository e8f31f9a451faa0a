using System.Diagnostics;
using Docker.DotNet;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Engine;
using MakinaStates.Image.Sdk.Settings;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The SSH tunnel against a real sshd of the test's own: the engine answers through it by docker system dial-stdio and
/// by a forwarded socket; each failure ssh can have is its coded error, in time; and nothing outlives it (no ssh
/// process, no folder, no socket).
/// </summary>
[TestClass]
public sealed class SshTunnelTests
{
    private static TestSshd? s_sshd;

    [ClassInitialize]
    public static async Task StartSshd(TestContext _) => s_sshd = await TestSshd.StartAsync();

    [ClassCleanup]
    public static async Task StopSshd()
    {
        if (s_sshd is not null)
        {
            await s_sshd.DisposeAsync();
        }
    }

    private static TestSshd Sshd => s_sshd!;

    private static IReadOnlyList<string> Command(string? config = null) => ["ssh", "-F", config ?? Sshd.ConfigFile];

    private static SshTarget Target(string? socketPath = null, int? port = null) => SshTarget.Parse(new Uri($"ssh://root@127.0.0.1:{port ?? Sshd.Port}{socketPath}"), "the test");

    [TestMethod]
    [DataRow(null, DisplayName = "docker system dial-stdio")]
    [DataRow("/var/run/docker.sock", DisplayName = "the engine's socket forwarded")]
    public async Task The_engine_answers_through_the_tunnel_and_nothing_outlives_it(string? socketPath)
    {
        using var docker = await TestDocker.RequireEngineAsync();
        var expected = (await docker.System.GetSystemInfoAsync()).ID;
        string folder;
        using (var tunnel = await SshTunnel.OpenAsync(Target(socketPath), Command(), CancellationToken.None))
        {
            folder = Path.GetDirectoryName(tunnel.SocketPath)!;
            using var client = new DockerClientBuilder().WithEndpoint(new Uri("unix://" + tunnel.SocketPath)).Build();
            // Several calls, some at once: each its own connection (dial-stdio: its own ssh over the master).
            var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.System.GetSystemInfoAsync()));
            Assert.IsTrue(answers.All(a => a.ID == expected), "another engine answered");
            var images = await client.Images.ListImagesAsync(new Docker.DotNet.Models.ImagesListParameters());
            Assert.IsTrue(images.Count > 0);
            Assert.IsTrue(Sshd.SshProcesses().Length > 0, "no ssh process serves the tunnel");
        }
        await AssertNothingLeftAsync(folder);
    }

    [TestMethod]
    public async Task Each_failure_is_its_coded_error_in_time_and_leaves_nothing()
    {
        var unknown = Sshd.ClientConfig("unknown");
        var changed = Sshd.ClientConfig("changed", Sshd.WrongHostKeyLine());
        var refusedKey = Sshd.ClientConfig("refused", otherKey: true);
        await using var withoutDocker = await TestSshd.StartAsync(remotePath: "/nonexistent-bin");
        (string Name, Func<Task> Open, string Code, string Text)[] cases =
        [
            ("no ssh program", () => SshTunnel.OpenAsync(Target(), ["/nonexistent/ssh"], CancellationToken.None), MsiCodes.SshMissing, "cannot be started"),
            ("host key unknown", () => SshTunnel.OpenAsync(Target(), Command(unknown), CancellationToken.None), MsiCodes.SshHostKeyNotTrusted, $"ssh-keyscan -p {Sshd.Port} 127.0.0.1"),
            ("host key changed", () => SshTunnel.OpenAsync(Target(), Command(changed), CancellationToken.None), MsiCodes.SshHostKeyNotTrusted, "has CHANGED"),
            ("login refused", () => SshTunnel.OpenAsync(Target(), Command(refusedKey), CancellationToken.None), MsiCodes.SshAuthenticationRefused, "refused the SSH login"),
            ("connection refused", () => SshTunnel.OpenAsync(Target(port: TestDocker.FreeLoopbackPort()), Command(), CancellationToken.None), MsiCodes.EngineUnreachable, "Connection refused"),
            ("no docker CLI there", () => SshTunnel.OpenAsync(SshTarget.Parse(new Uri(withoutDocker.Address()), "the test"), ["ssh", "-F", withoutDocker.ConfigFile], CancellationToken.None),
                MsiCodes.SshEngineNotFound, "ssh://user@host/var/run/docker.sock"),
            ("no socket at the path", () => SshTunnel.OpenAsync(Target("/run/nothing-here.sock"), Command(), CancellationToken.None), MsiCodes.SshEngineNotFound, "no socket at /run/nothing-here.sock"),
        ];
        foreach (var (name, open, code, text) in cases)
        {
            var before = TestSshd.TunnelFolders();
            var watch = Stopwatch.StartNew();
            var error = await Assert.ThrowsExactlyAsync<ImageBuildException>(open, name);
            Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(10), $"{name}: {watch.Elapsed.TotalSeconds:0.0} s");
            Assert.AreEqual(code, error.Code, $"{name}: {error.Message}");
            StringAssert.Contains(error.Message, text, name);
            CollectionAssert.AreEquivalent(before, TestSshd.TunnelFolders(), $"{name}: a tunnel folder was left");
            Assert.AreEqual(0, Sshd.SshProcesses().Length + withoutDocker.SshProcesses().Length, $"{name}: ssh left running");
        }
    }

    [TestMethod]
    public async Task A_tunnel_left_by_a_killed_build_is_ended_by_the_next_one()
    {
        // A build killed with SIGKILL leaves its master ssh and folder: what its process would leave, made by a child
        // process that opens a tunnel and is killed.
        var script = Path.Combine(Sshd.Directory, "abandon.sh");
        var folderBase = TestSshd.TunnelFolderBase;
        var before = TestSshd.TunnelFolders();
        using var orphanOwner = Process.Start("/bin/sh", ["-c", $"mkdir -m 700 {folderBase}/msimage-ssh-$$-deadbeef && " +
            $"exec ssh -F {Sshd.ConfigFile} -o BatchMode=yes -o ControlMaster=yes -o ControlPath={folderBase}/msimage-ssh-$$-deadbeef/control -N -f root@127.0.0.1 -p {Sshd.Port}"])!;
        await orphanOwner.WaitForExitAsync();
        var abandoned = TestSshd.TunnelFolders().Except(before).Single();
        Assert.IsTrue(File.Exists(Path.Combine(abandoned, "control")), "the abandoned master is not running");
        Assert.IsTrue(Sshd.SshProcesses().Length > 0);

        using (await SshTunnel.OpenAsync(Target("/var/run/docker.sock"), Command(), CancellationToken.None))
        {
            Assert.IsFalse(Directory.Exists(abandoned), "the abandoned tunnel's folder is still there");
        }
        await AssertNothingLeftAsync(abandoned);
    }

    private static async Task AssertNothingLeftAsync(string folder)
    {
        // ssh processes end as their master does, within a moment.
        for (var i = 0; i < 50 && Sshd.SshProcesses().Length > 0; i++)
        {
            await Task.Delay(100);
        }
        CollectionAssert.AreEqual(Array.Empty<string>(), Sshd.SshProcesses(), "ssh left running");
        Assert.IsFalse(Directory.Exists(folder), $"{folder} (its sockets) left");
    }
}
