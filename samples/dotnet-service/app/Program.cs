using System.Net;
using System.Net.Sockets;
using System.Text;

// A tiny HTTP/1.0 service (no web framework): answers every request with a greeting. systemd runs it.
var port = int.TryParse(Environment.GetEnvironmentVariable("DOTNET_SERVICE_PORT"), out var configured) ? configured : 8081;
var listener = new TcpListener(IPAddress.Any, port);
listener.Start();
Console.WriteLine($"dotnet-service listening on {port}");
while (true)
{
    using var client = await listener.AcceptTcpClientAsync();
    await using var stream = client.GetStream();
    using var reader = new StreamReader(stream, Encoding.ASCII, leaveOpen: true);
    while (!string.IsNullOrEmpty(await reader.ReadLineAsync()))
    {
        // Skip the request line and headers.
    }
    var body = $"Hello from a .NET service on {Environment.MachineName}\n";
    var response = $"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}";
    await stream.WriteAsync(Encoding.UTF8.GetBytes(response));
}
