using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>What the up-to-date check needs of an image: its id, size, creation time and labels.</summary>
public sealed record ImageSummary(string Id, long Size, DateTime? Created, IReadOnlyDictionary<string, string> Labels)
{
    public static ImageSummary From(Docker.DotNet.Models.ImageInspectResponse image) =>
        new(image.ID, image.Size, image.Created, image.Config?.Labels is { } labels ? new Dictionary<string, string>(labels) : new Dictionary<string, string>());
}

/// <summary>
/// One image inspect on a local engine socket, with the BCL's HTTP client and JSON reader: the no-op build's one engine
/// call. Docker.DotNet's first answer costs 0.1 s in-process before anything else (its serializer's first use, measured
/// here: 0.12 s for an inspect against 0.05 s this way), which is most of a no-op build's Stage0. Anything unexpected
/// is null: the caller then takes the whole path, through Docker.DotNet, which says what is wrong.
/// </summary>
public static class LocalImageProbe
{
    public sealed record Answer(ImageSummary? Image);

    /// <summary>The image, an answer without it (a 404), or null when the engine's answer is not one (no socket, an
    /// error, a time-out).</summary>
    public static async Task<Answer?> InspectAsync(string socketPath, string reference, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, token) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), token).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        using var client = new HttpClient(handler) { Timeout = DockerEngine.PingTimeout };
        try
        {
            // The API's unversioned path: every engine serves it at its own version, as the docker CLI's first call does.
            using var response = await client.GetAsync($"http://engine/images/{Uri.EscapeDataString(reference)}/json", cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return new Answer(null);
            }
            if (!response.IsSuccessStatusCode)
            {
                return null;
            }
            using var json = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), default, cancellationToken).ConfigureAwait(false);
            return new Answer(Summary(json.RootElement));
        }
        catch (Exception e) when (e is HttpRequestException or IOException or SocketException or JsonException or InvalidOperationException or KeyNotFoundException
                                      || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return null;
        }
    }

    private static ImageSummary Summary(JsonElement image)
    {
        var labels = new Dictionary<string, string>();
        if (image.TryGetProperty("Config", out var config) && config.ValueKind == JsonValueKind.Object
            && config.TryGetProperty("Labels", out var found) && found.ValueKind == JsonValueKind.Object)
        {
            foreach (var label in found.EnumerateObject())
            {
                labels[label.Name] = label.Value.GetString() ?? "";
            }
        }
        return new ImageSummary(image.GetProperty("Id").GetString() ?? throw new JsonException("no Id"), image.GetProperty("Size").GetInt64(),
            Created(image.GetProperty("Created").GetString() ?? ""), labels);
    }

    /// <summary>RFC 3339 with the engine's nanoseconds: .NET reads seven fraction digits at most.</summary>
    private static DateTime Created(string value)
    {
        var trimmed = System.Text.RegularExpressions.Regex.Replace(value, @"(\.\d{7})\d+", "$1");
        return DateTimeOffset.TryParse(trimmed, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var created)
            ? created.UtcDateTime : throw new JsonException($"Created: {value}");
    }
}
