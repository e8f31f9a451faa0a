using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Runs a command in a running container through the exec API, streaming its output line by line.</summary>
public static class ContainerExec
{
    public sealed record Result(long ExitCode, IReadOnlyList<string> LastLines);

    public static async Task<Result> RunAsync(DockerClient client, string containerId, IList<string> command,
        IList<string>? environment, Action<string> onLine, CancellationToken cancellationToken, int keepLastLines = 50)
    {
        var exec = await client.Exec.CreateContainerExecAsync(containerId, new ContainerExecCreateParameters
        {
            AttachStdout = true,
            AttachStderr = true,
            Cmd = command,
            Env = environment ?? [],
        }, cancellationToken).ConfigureAwait(false);

        var last = new Queue<string>();
        void Emit(string line)
        {
            onLine(line);
            last.Enqueue(line);
            if (last.Count > keepLastLines)
            {
                last.Dequeue();
            }
        }

        using (var stream = await client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters(), cancellationToken).ConfigureAwait(false))
        {
            // One decoder per channel: a UTF-8 sequence may be split across frames.
            var splitters = new Dictionary<MultiplexedStream.TargetStream, LineSplitter>();
            var buffer = new byte[16 * 1024];
            while (true)
            {
                var read = await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken).ConfigureAwait(false);
                if (read.EOF)
                {
                    break;
                }
                if (!splitters.TryGetValue(read.Target, out var splitter))
                {
                    splitters[read.Target] = splitter = new LineSplitter(Emit);
                }
                splitter.Append(buffer, read.Count);
            }
            foreach (var splitter in splitters.Values)
            {
                splitter.Flush();
            }
        }

        var inspect = await client.Exec.InspectContainerExecAsync(exec.ID, cancellationToken).ConfigureAwait(false);
        return new Result(inspect.ExitCode ?? -1, last.ToArray());
    }

    private sealed class LineSplitter(Action<string> emit)
    {
        private readonly Decoder _decoder = new UTF8Encoding(false).GetDecoder();
        private readonly StringBuilder _line = new();
        private char[] _chars = new char[1024];

        public void Append(byte[] bytes, int count)
        {
            var needed = _decoder.GetCharCount(bytes, 0, count);
            if (_chars.Length < needed)
            {
                _chars = new char[needed];
            }
            var decoded = _decoder.GetChars(bytes, 0, count, _chars, 0);
            for (var i = 0; i < decoded; i++)
            {
                var c = _chars[i];
                if (c == '\n')
                {
                    emit(_line.ToString().TrimEnd('\r'));
                    _line.Clear();
                }
                else
                {
                    _line.Append(c);
                }
            }
        }

        public void Flush()
        {
            if (_line.Length > 0)
            {
                emit(_line.ToString());
                _line.Clear();
            }
        }
    }
}
