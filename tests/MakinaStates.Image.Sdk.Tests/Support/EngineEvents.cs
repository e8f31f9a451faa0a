using System.Globalization;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Tests.Support;

/// <summary>
/// The engine's container events (docker events) for one label while a test acts: what the engine did, not what the
/// build log says it did. Each event's attributes carry the container's labels.
/// </summary>
public sealed class EngineEvents : IAsyncDisposable
{
    private readonly DockerClient _client;
    private readonly string _label;
    private readonly string _since;
    private readonly List<Message> _events = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _monitor;

    private EngineEvents(DockerClient client, string label)
    {
        _client = client;
        _label = label;
        // The engine replays events from 'since' on: none is lost while the stream is being opened.
        _since = Timestamp(DateTimeOffset.UtcNow);
        _monitor = client.System.MonitorEventsAsync(Parameters(null), new Recorder(_events), _stop.Token);
    }

    /// <summary>Starts recording the container events of containers that carry <paramref name="label"/> (key or key=value).</summary>
    public static EngineEvents Record(DockerClient client, string label) => new(client, label);

    /// <summary>
    /// Stops recording and returns the events in the engine's order. The events between the last one streamed and now
    /// (still in flight when the test acts) are read again from the engine's own record, bounded by now.
    /// </summary>
    public async Task<IReadOnlyList<Message>> StopAsync()
    {
        var until = Timestamp(DateTimeOffset.UtcNow);
        await _stop.CancelAsync();
        try
        {
            await _monitor;
        }
        catch (OperationCanceledException)
        {
        }
        List<Message> all;
        lock (_events) all = [.. _events];
        var late = new List<Message>();
        // until in the past: the engine sends what it recorded up to then and ends the stream.
        await _client.System.MonitorEventsAsync(Parameters(until), new Recorder(late), CancellationToken.None);
        return [.. all.Concat(late).DistinctBy(e => (e.TimeNano, e.Action, e.Actor?.ID)).OrderBy(e => e.TimeNano)];
    }

    private ContainerEventsParameters Parameters(string? until) => new()
    {
        Since = _since,
        Until = until,
        Filters = new Dictionary<string, IDictionary<string, bool>>
        {
            ["type"] = new Dictionary<string, bool> { ["container"] = true },
            ["label"] = new Dictionary<string, bool> { [_label] = true },
        },
    };

    private static string Timestamp(DateTimeOffset time) =>
        (time.ToUnixTimeMilliseconds() / 1000.0).ToString("0.000", CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _monitor;
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    /// <summary>Records synchronously, in stream order (Progress&lt;T&gt; would post to the thread pool, in any order).</summary>
    private sealed class Recorder(List<Message> events) : IProgress<Message>
    {
        public void Report(Message value)
        {
            lock (events) events.Add(value);
        }
    }
}
