using System.Net.Sockets;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// The process serving a local engine socket, from the socket's peer credentials (SO_PEERCRED): which user runs the
/// engine (a rootless Podman runs as its user), and whether the cgroup it runs in is that user's to write (delegated),
/// which systemd in its containers needs.
/// </summary>
public sealed record EngineProcess(int Pid, uint Uid)
{
    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    public bool Rootless => Uid != 0;

    /// <summary>null when the engine is not behind a local unix socket, or the credentials cannot be read.</summary>
    public static EngineProcess? Of(Settings.DockerEndpoint endpoint)
    {
        if (!OperatingSystem.IsLinux() || endpoint.Address.Scheme != "unix")
        {
            return null;
        }
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(endpoint.Address.LocalPath));
            var credentials = new byte[12];
            if (socket.GetRawSocketOption(SolSocket, SoPeerCred, credentials) < 12)
            {
                return null;
            }
            return new EngineProcess(BitConverter.ToInt32(credentials, 0), BitConverter.ToUInt32(credentials, 4));
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>The engine's cgroup v2 path ("/user.slice/…"), as /proc/&lt;pid&gt;/cgroup says; null if unknown.</summary>
    public string? CgroupPath()
    {
        try
        {
            return File.ReadLines($"/proc/{Pid}/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether the engine's user owns its cgroup (what systemd's Delegate=yes gives a user session): only then can it
    /// give a container a cgroup to write. Read through /proc/&lt;pid&gt;/root, so the engine's own mount namespace
    /// counts. null when it cannot be told.
    /// </summary>
    public bool? OwnsItsCgroup()
    {
        if (CgroupPath() is not { } path)
        {
            return null;
        }
        var procs = $"/proc/{Pid}/root/sys/fs/cgroup{path.TrimEnd('/')}/cgroup.procs";
        return Mono.Unix.Native.Syscall.stat(procs, out var stat) == 0 ? stat.st_uid == Uid : null;
    }
}
