using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// A unix socket in a temp folder that passes every byte to the engine's socket and back, and keeps the request line
/// of each API call a client made through it ("GET /images/…/json"): what a build asks of the engine, counted.
/// </summary>
public sealed partial class CountingEngineProxy : IDisposable
{
    private Socket _listener;
    private readonly string _engineSocket;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _requests = [];
    private readonly string _directory;

    public CountingEngineProxy(string engineSocket = "/var/run/docker.sock")
    {
        _engineSocket = engineSocket;
        _directory = Directory.CreateTempSubdirectory("msimage-proxy-").FullName;
        SocketPath = Path.Combine(_directory, "engine.sock");
        _listener = Listen(SocketPath);
    }

    private Socket Listen(string path)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(64);
        _ = AcceptAsync(listener);
        return listener;
    }

    /// <summary>The socket made again at the same path, as an engine that restarts makes its own: another file.</summary>
    public void MakeSocketAgain()
    {
        _listener.Dispose();
        File.Delete(SocketPath);
        _listener = Listen(SocketPath);
    }

    public string SocketPath { get; }

    /// <summary>MsDockerHost for a build through this proxy.</summary>
    public string Host => $"unix://{SocketPath}";

    /// <summary>The request lines since the last <see cref="Clear"/>, in order.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    public void Clear()
    {
        lock (_requests)
        {
            _requests.Clear();
        }
    }

    [GeneratedRegex(@"(?:GET|HEAD|POST|PUT|DELETE) /\S* HTTP/1\.[01]\r\n")]
    private static partial Regex RequestLine();

    private async Task AcceptAsync(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token);
            }
            catch (Exception)
            {
                // Stopped, or this listener was replaced.
                return;
            }
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        using var engine = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        using (client)
        {
            try
            {
                await engine.ConnectAsync(new UnixDomainSocketEndPoint(_engineSocket), _stop.Token);
                await using var fromClient = new NetworkStream(client, ownsSocket: false);
                await using var toEngine = new NetworkStream(engine, ownsSocket: false);
                var up = CopyCountingAsync(fromClient, toEngine, engine);
                var down = CopyAsync(toEngine, fromClient, client);
                await Task.WhenAll(up, down);
            }
            catch (Exception)
            {
                // A connection closed either way: what was counted stays.
            }
        }
    }

    /// <summary>The client's bytes to the engine; request lines are found in what was read so far (a line may span reads).</summary>
    private async Task CopyCountingAsync(Stream from, Stream to, Socket target)
    {
        var buffer = new byte[1 << 16];
        var pending = new StringBuilder();
        int read;
        while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
        {
            pending.Append(Encoding.Latin1.GetString(buffer, 0, read));
            var text = pending.ToString();
            var last = 0;
            foreach (Match line in RequestLine().Matches(text))
            {
                lock (_requests)
                {
                    _requests.Add(line.Value.TrimEnd());
                }
                last = line.Index + line.Length;
            }
            // Keep only a tail that could be the start of a request line.
            pending.Clear().Append(text[Math.Max(last, text.Length - 512)..]);
            await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
        }
        target.Shutdown(SocketShutdown.Send);
    }

    private async Task CopyAsync(Stream from, Stream to, Socket target)
    {
        await from.CopyToAsync(to, _stop.Token);
        target.Shutdown(SocketShutdown.Send);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
