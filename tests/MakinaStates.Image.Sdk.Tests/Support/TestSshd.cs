using System.Diagnostics;
using System.Net.Sockets;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// An sshd of the test's own on a loopback port, with a host key and a client key made for it, and an ssh config
/// (<see cref="SshCommand"/>, given to the SDK as MsSshCommand) whose known_hosts holds that host key. Everything is
/// in one folder, removed on dispose with the daemon and every session it forked.
/// </summary>
public sealed class TestSshd : IAsyncDisposable
{
    private readonly Process _daemon;

    private TestSshd(string directory, int port, Process daemon)
    {
        Directory = directory;
        Port = port;
        _daemon = daemon;
    }

    public string Directory { get; }

    public int Port { get; }

    /// <summary>The ssh program as the SDK should start it: the system's ssh with this server's config.</summary>
    public string SshCommand => $"ssh -F {Path.Combine(Directory, "ssh_config")}";

    public string ConfigFile => Path.Combine(Directory, "ssh_config");

    /// <summary>ssh://root@127.0.0.1:port[path].</summary>
    public string Address(string? socketPath = null) => $"ssh://root@127.0.0.1:{Port}{socketPath}";

    public string Log => File.Exists(Path.Combine(Directory, "sshd.log")) ? File.ReadAllText(Path.Combine(Directory, "sshd.log")) : "";

    /// <param name="remotePath">PATH of the remote sessions (a PATH without docker: the remote has no docker CLI).</param>
    public static async Task<TestSshd> StartAsync(string? remotePath = null)
    {
        foreach (var tool in new[] { "/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen" })
        {
            if (!File.Exists(tool))
            {
                TestDocker.MissingPrerequisite($"{tool} is missing: bash .ci/setup installs openssh-server and openssh-client");
            }
        }
        if (Mono.Unix.Native.Syscall.geteuid() != 0)
        {
            TestDocker.MissingPrerequisite("the test sshd logs in as root: run the tests as root");
        }
        var directory = System.IO.Directory.CreateTempSubdirectory("mssshd-").FullName;
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var port = TestDocker.FreeLoopbackPort();
        NewKey(Path.Combine(directory, "host_key"));
        NewKey(Path.Combine(directory, "id_ed25519"));
        File.Copy(Path.Combine(directory, "id_ed25519.pub"), Path.Combine(directory, "authorized_keys"));
        File.WriteAllText(Path.Combine(directory, "known_hosts"), $"[127.0.0.1]:{port} {File.ReadAllText(Path.Combine(directory, "host_key.pub")).Trim()}\n");
        File.WriteAllText(Path.Combine(directory, "sshd_config"), $"""
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {directory}/host_key
            PidFile {directory}/sshd.pid
            AuthorizedKeysFile {directory}/authorized_keys
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            AllowStreamLocalForwarding yes
            PrintMotd no
            LogLevel VERBOSE
            {(remotePath is null ? "" : $"SetEnv PATH={remotePath}")}
            """);
        WriteClientConfig(directory, "known_hosts", "id_ed25519");
        var daemon = HostProcess.StartDaemon($"/usr/sbin/sshd -D -e -f {directory}/sshd_config", Path.Combine(directory, "sshd.log"));
        var sshd = new TestSshd(directory, port, daemon);
        for (var i = 0; i < 100 && !await AcceptsAsync(port); i++)
        {
            if (daemon.HasExited)
            {
                var log = sshd.Log;
                await sshd.DisposeAsync();
                Assert.Fail($"sshd did not start: {log}");
            }
            await Task.Delay(50);
        }
        return sshd;
    }

    /// <summary>The same server seen with another known_hosts or key (an unknown or changed host key, a key it refuses).</summary>
    public string ClientConfig(string name, string? knownHosts = null, bool otherKey = false)
    {
        var hosts = $"known_hosts.{name}";
        File.WriteAllText(Path.Combine(Directory, hosts), knownHosts ?? "");
        var key = "id_ed25519";
        if (otherKey)
        {
            key = $"id_other.{name}";
            NewKey(Path.Combine(Directory, key));
            File.Copy(Path.Combine(Directory, "known_hosts"), Path.Combine(Directory, hosts), overwrite: true);
        }
        return WriteClientConfig(Directory, hosts, key, $"ssh_config.{name}");
    }

    /// <summary>A known_hosts line for this server with a key that is not its own.</summary>
    public string WrongHostKeyLine()
    {
        var other = Path.Combine(Directory, "wrong_host_key");
        if (!File.Exists(other))
        {
            NewKey(other);
        }
        return $"[127.0.0.1]:{Port} {File.ReadAllText(other + ".pub").Trim()}\n";
    }

    private static string WriteClientConfig(string directory, string knownHosts, string key, string name = "ssh_config")
    {
        var path = Path.Combine(directory, name);
        File.WriteAllText(path, $"""
            Host *
              UserKnownHostsFile {directory}/{knownHosts}
              GlobalKnownHostsFile /dev/null
              StrictHostKeyChecking yes
              IdentityFile {directory}/{key}
              IdentitiesOnly yes
              IdentityAgent none
              LogLevel ERROR
            """);
        return path;
    }

    private static void NewKey(string path) => HostProcess.Run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "msimage-test", "-f", path);

    private static async Task<bool> AcceptsAsync(int port)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>The SDK's tunnel folders (SshTunnel: msimage-ssh-* in XDG_RUNTIME_DIR, else /tmp).</summary>
    public static string[] TunnelFolders() => System.IO.Directory.GetDirectories(TunnelFolderBase, "msimage-ssh-*");

    public static string TunnelFolderBase =>
        Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } runtime && System.IO.Directory.Exists(runtime) ? runtime : "/tmp";

    /// <summary>ssh processes still running with this server's files (the SDK's tunnels must have ended).</summary>
    public string[] SshProcesses() =>
        [.. System.IO.Directory.GetDirectories("/proc").Select(p => Path.GetFileName(p)).Where(p => int.TryParse(p, out _))
            .Select(pid => (pid, line: ReadCommandLine(pid)))
            .Where(p => p.line.Split(' ')[0].EndsWith("ssh", StringComparison.Ordinal) && p.line.Contains(Directory, StringComparison.Ordinal))
            .Select(p => $"{p.pid}: {p.line}")];

    private static string ReadCommandLine(string pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    public async ValueTask DisposeAsync()
    {
        // The daemon and the sessions it forked (a session outlives a listener stopped alone).
        try
        {
            _daemon.Kill(entireProcessTree: true);
            await _daemon.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
        }
        _daemon.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
