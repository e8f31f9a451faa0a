using System.Diagnostics;
using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The engine API of an ssh:// endpoint on a local unix socket, through the system's ssh client (so ~/.ssh/config,
/// agents, ProxyJump and known_hosts work as they do for the user), in batch mode: never a prompt.
/// One master connection (ControlMaster) serves the whole build. With a socket path, the master forwards that socket
/// (ssh -O forward -L local:remote): every API call rides on it. Without one, each API connection runs
/// `docker system dial-stdio` on the remote over the master, as the docker CLI does (<see cref="DialStdioRelay"/>).
/// Why not a transport inside Docker.DotNet: it has none for SSH (dotnet/Docker.DotNet#540), and a unix socket is
/// what its transport already speaks. Its folder (mode 700, named by this process) holds the control and API sockets;
/// a build killed before it could close its tunnel leaves one whose owner is gone: the next tunnel opened ends it.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class SshTunnel : IDisposable
{
    /// <summary>How long the connection and the login may take: within the README's 10 s for an unreachable engine.</summary>
    public static readonly TimeSpan ConnectBound = TimeSpan.FromSeconds(8);
    private const string FolderPrefix = "msimage-ssh-";

    private readonly IReadOnlyList<string> _command;
    private readonly Process _master;
    private readonly string _folder;
    private readonly string _control;
    private DialStdioRelay? _relay;
    private int _disposed;

    private SshTunnel(SshTarget target, IReadOnlyList<string> command, Process master, string folder)
    {
        Target = target;
        _command = command;
        _master = master;
        _folder = folder;
        _control = Path.Combine(folder, "control");
        SocketPath = Path.Combine(folder, "engine.sock");
    }

    public SshTarget Target { get; }

    /// <summary>The local socket the engine API answers on.</summary>
    public string SocketPath { get; }

    private static readonly Dictionary<string, Task<SshTunnel>> Shared = new(StringComparer.Ordinal);

    /// <summary>
    /// The tunnel to <paramref name="target"/> this process already has open, or a new one: every engine connection of
    /// a build shares it. <see cref="CloseShared"/> ends them all (the build's end, or its process's).
    /// </summary>
    public static Task<SshTunnel> ShareAsync(SshTarget target, IReadOnlyList<string> command, CancellationToken cancellationToken)
    {
        var key = $"{string.Join('\0', command)}\0{target}";
        lock (Shared)
        {
            if (Shared.TryGetValue(key, out var open) && !open.IsFaulted && !open.IsCanceled && !(open.IsCompletedSuccessfully && open.Result.HasEnded))
            {
                return open;
            }
            return Shared[key] = OpenAsync(target, command, cancellationToken);
        }
    }

    /// <summary>Ends every tunnel <see cref="ShareAsync"/> opened.</summary>
    public static void CloseShared()
    {
        Task<SshTunnel>[] open;
        lock (Shared)
        {
            open = [.. Shared.Values];
            Shared.Clear();
        }
        foreach (var tunnel in open.Where(t => t.IsCompletedSuccessfully))
        {
            tunnel.Result.Dispose();
        }
    }

    /// <summary>The master connection ended (the remote went away, or this tunnel was closed).</summary>
    public bool HasEnded => _disposed != 0 || _master.HasExited;

    /// <param name="command">The ssh program and its own options (MsSshCommand: ssh, or e.g. ssh -F ./ssh_config).</param>
    public static async Task<SshTunnel> OpenAsync(SshTarget target, IReadOnlyList<string> command, CancellationToken cancellationToken)
    {
        EndAbandonedTunnels(command);
        // Only this user may reach the sockets in it: the API socket is the engine itself.
        var folder = Directory.CreateDirectory(Path.Combine(BaseFolder(), $"{FolderPrefix}{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}"),
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
        Process master;
        try
        {
            master = Start(command, [.. CommonOptions(target, Path.Combine(folder, "control")), "-o", "ControlMaster=yes", "-o", "ControlPersist=no",
                "-o", $"ConnectTimeout={(int)ConnectBound.TotalSeconds - 2}", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3", "-N", "--", target.Host],
                redirectInput: false);
        }
        catch
        {
            Directory.Delete(folder, recursive: true);
            throw;
        }
        var tunnel = new SshTunnel(target, command, master, folder);
        try
        {
            await tunnel.WaitForMasterAsync(cancellationToken).ConfigureAwait(false);
            if (target.SocketPath is { } remoteSocket)
            {
                await tunnel.ForwardAsync(remoteSocket, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await tunnel.CheckDockerCliAsync(cancellationToken).ConfigureAwait(false);
                tunnel._relay = DialStdioRelay.Start(tunnel.SocketPath,
                    () => Start(command, [.. tunnel.ClientOptions(), "--", target.Host, "docker", "system", "dial-stdio"], redirectInput: true));
            }
            return tunnel;
        }
        catch
        {
            tunnel.Dispose();
            throw;
        }
    }

    /// <summary>The master is up when its control socket exists; its exit before that is the connection's error.</summary>
    private async Task WaitForMasterAsync(CancellationToken cancellationToken)
    {
        var errors = _master.StandardError.ReadToEndAsync(CancellationToken.None);
        var watch = Stopwatch.StartNew();
        while (!File.Exists(_control))
        {
            if (_master.HasExited)
            {
                throw Classify(await errors.ConfigureAwait(false), _master.ExitCode);
            }
            if (watch.Elapsed > ConnectBound)
            {
                throw new ImageBuildException(MsiCodes.EngineUnreachable, MsiMessages.Format("EngineUnreachable", Target.Display,
                    $"ssh did not connect within {ConnectBound.TotalSeconds:0} seconds"));
            }
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ForwardAsync(string remoteSocket, CancellationToken cancellationToken)
    {
        var (exists, _) = await RunAsync(["--", Target.Host, "test", "-S", ShellQuote(remoteSocket)], cancellationToken).ConfigureAwait(false);
        if (exists != 0)
        {
            throw new ImageBuildException(MsiCodes.SshEngineNotFound, MsiMessages.Format("SshSocketMissing", Target.Display, remoteSocket));
        }
        var (forwarded, errors) = await RunAsync(["-O", "forward", "-L", $"{SocketPath}:{remoteSocket}", "--", Target.Host], cancellationToken).ConfigureAwait(false);
        if (forwarded != 0)
        {
            throw new ImageBuildException(MsiCodes.EngineUnreachable, MsiMessages.Format("EngineUnreachable", Target.Display, $"ssh could not forward {remoteSocket}: {errors.Trim()}"));
        }
        var watch = Stopwatch.StartNew();
        while (!File.Exists(SocketPath) && watch.Elapsed < ConnectBound)
        {
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task CheckDockerCliAsync(CancellationToken cancellationToken)
    {
        var (found, _) = await RunAsync(["--", Target.Host, "command", "-v", "docker"], cancellationToken).ConfigureAwait(false);
        if (found != 0)
        {
            throw new ImageBuildException(MsiCodes.SshEngineNotFound, MsiMessages.Format("SshDockerCliMissing", Target.Display));
        }
    }

    /// <summary>A command over the master connection; its exit code and error output.</summary>
    private async Task<(int ExitCode, string Errors)> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        using var process = Start(_command, [.. ClientOptions(), .. arguments], redirectInput: false);
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(ConnectBound);
        try
        {
            await process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            throw new ImageBuildException(MsiCodes.EngineUnreachable, MsiMessages.Format("EngineUnreachable", Target.Display, "ssh did not answer"));
        }
        await output.ConfigureAwait(false);
        return (process.ExitCode, await errors.ConfigureAwait(false));
    }

    private IReadOnlyList<string> ClientOptions() => [.. CommonOptions(Target, _control), "-o", "ControlMaster=no"];

    private static IReadOnlyList<string> CommonOptions(SshTarget target, string control) =>
        ["-o", "BatchMode=yes", "-o", $"ControlPath={control}", .. target.Options()];

    /// <summary>ssh's own words, as a coded error that says what to do.</summary>
    private ImageBuildException Classify(string errors, int exitCode)
    {
        var said = string.Join(' ', errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3));
        if (errors.Contains("REMOTE HOST IDENTIFICATION HAS CHANGED", StringComparison.Ordinal))
        {
            return new ImageBuildException(MsiCodes.SshHostKeyNotTrusted, MsiMessages.Format("SshHostKeyChanged", Target.Display, Target.Host, PortOption()));
        }
        if (errors.Contains("Host key verification failed", StringComparison.Ordinal) || HostKeyUnknown().IsMatch(errors))
        {
            return new ImageBuildException(MsiCodes.SshHostKeyNotTrusted, MsiMessages.Format("SshHostKeyUnknown", Target.Display, Target.Host, PortOption()));
        }
        if (errors.Contains("Permission denied", StringComparison.Ordinal) || errors.Contains("Too many authentication failures", StringComparison.Ordinal))
        {
            return new ImageBuildException(MsiCodes.SshAuthenticationRefused, MsiMessages.Format("SshAuthenticationRefused", Target.Display, said));
        }
        return new ImageBuildException(MsiCodes.EngineUnreachable, MsiMessages.Format("EngineUnreachable", Target.Display,
            said.Length > 0 ? $"ssh: {said}" : $"ssh exited with {exitCode}"));
    }

    private string PortOption() => Target.Port is { } port ? $"-p {port} " : "";

    [GeneratedRegex(@"No \S+ host key is known for")]
    private static partial Regex HostKeyUnknown();

    private static Process Start(IReadOnlyList<string> command, IReadOnlyList<string> arguments, bool redirectInput)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1).Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"{command[0]} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ImageBuildException(MsiCodes.SshMissing, MsiMessages.Format("SshMissing", command[0], e.Message), null, e);
        }
    }

    /// <summary>A remote shell runs the command line: a path with spaces or quotes stays one word.</summary>
    private static string ShellQuote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Where tunnel folders go: the user's runtime folder, else the temporary folder (unix socket paths are short).</summary>
    private static string BaseFolder()
    {
        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return !string.IsNullOrEmpty(runtime) && Directory.Exists(runtime) ? runtime : "/tmp";
    }

    /// <summary>Tunnels of builds that were killed (their process is gone): their master is told to exit, their folder goes.</summary>
    private static void EndAbandonedTunnels(IReadOnlyList<string> command)
    {
        foreach (var folder in Directory.EnumerateDirectories(BaseFolder(), FolderPrefix + "*"))
        {
            var owner = Path.GetFileName(folder)[FolderPrefix.Length..].Split('-')[0];
            if (!int.TryParse(owner, out var pid) || pid == Environment.ProcessId || Directory.Exists($"/proc/{pid}"))
            {
                continue;
            }
            try
            {
                var control = Path.Combine(folder, "control");
                if (File.Exists(control))
                {
                    using var exit = Start(command, ["-o", $"ControlPath={control}", "-O", "exit", "abandoned"], redirectInput: false);
                    exit.WaitForExit(2000);
                }
                Directory.Delete(folder, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ImageBuildException)
            {
                // Another user's, or going away on its own: not this build's concern.
            }
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        _relay?.Dispose();
        try
        {
            if (!_master.HasExited)
            {
                _master.Kill(entireProcessTree: true);
                _master.WaitForExit(2000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        _master.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
