using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// A local unix socket whose every connection is piped through a process of its own (`ssh … docker system
/// dial-stdio`): what the docker CLI does for ssh:// without a socket path, given to Docker.DotNet as a socket.
/// Each connection ends when either side closes; disposing ends them all.
/// </summary>
public sealed class DialStdioRelay : IDisposable
{
    private readonly Socket _listener;
    private readonly Func<Process> _dial;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<Process, byte> _running = new();

    private DialStdioRelay(Socket listener, Func<Process> dial)
    {
        _listener = listener;
        _dial = dial;
        _ = AcceptAsync();
    }

    public static DialStdioRelay Start(string socketPath, Func<Process> dial)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(64);
        return new DialStdioRelay(listener, dial);
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = PipeAsync(client);
        }
    }

    private async Task PipeAsync(Socket client)
    {
        Process? process = null;
        try
        {
            process = _dial();
            _running[process] = 0;
            _ = process.StandardError.ReadToEndAsync();
            await using var local = new NetworkStream(client, ownsSocket: true);
            var toRemote = CopyThenCloseAsync(local, process.StandardInput.BaseStream);
            var fromRemote = process.StandardOutput.BaseStream.CopyToAsync(local, 1 << 16, _stop.Token);
            // The remote's answer ending ends the connection; the request side may still be open (HTTP keeps it).
            await fromRemote.ConfigureAwait(false);
            client.Shutdown(SocketShutdown.Both);
            await Task.WhenAny(toRemote, Task.Delay(1000)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
        }
        catch (Diagnostics.ImageBuildException)
        {
            // ssh went missing mid-build: the API call on this connection fails, and says so through the engine client.
        }
        finally
        {
            client.Dispose();
            if (process is not null)
            {
                _running.TryRemove(process, out _);
                End(process);
            }
        }
    }

    private async Task CopyThenCloseAsync(Stream from, Stream to)
    {
        try
        {
            await from.CopyToAsync(to, 1 << 16, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            // dial-stdio sees the end of the request and half-closes the engine's connection, as docker's does.
            try
            {
                to.Close();
            }
            catch (IOException)
            {
            }
        }
    }

    private static void End(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(1000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        process.Dispose();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        foreach (var process in _running.Keys)
        {
            End(process);
        }
    }
}
