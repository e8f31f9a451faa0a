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

        var last = new LastLines(keepLastLines);
        using (var stream = await client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters(), cancellationToken).ConfigureAwait(false))
        {
            await ReadLinesAsync(stream, line => { onLine(line); last.Add(line); }, cancellationToken).ConfigureAwait(false);
        }

        var inspect = await client.Exec.InspectContainerExecAsync(exec.ID, cancellationToken).ConfigureAwait(false);
        return new Result(inspect.ExitCode ?? -1, last.ToList());
    }

    /// <summary>Reads a multiplexed stdout/stderr stream to its end, in order, as lines (UTF-8 split across frames is fine).</summary>
    internal static async Task ReadLinesAsync(MultiplexedStream stream, Action<string> onLine, CancellationToken cancellationToken)
    {
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
                splitters[read.Target] = splitter = new LineSplitter(onLine);
            }
            splitter.Append(buffer, read.Count);
        }
        foreach (var splitter in splitters.Values)
        {
            splitter.Flush();
        }
    }

    /// <summary>
    /// Writes a file inside a running container through the exec's stdin: it reaches tmpfs mounts (which the archive
    /// API cannot) and never passes through an argument, an environment variable or a log.
    /// </summary>
    public static async Task WriteFileAsync(DockerClient client, string containerId, string path, byte[] content, CancellationToken cancellationToken)
    {
        var exec = await client.Exec.CreateContainerExecAsync(containerId, new ContainerExecCreateParameters
        {
            AttachStdin = true,
            AttachStdout = true,
            AttachStderr = true,
            Cmd = ["/bin/sh", "-c", "umask 077 && mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\"", "sh", path],
        }, cancellationToken).ConfigureAwait(false);
        var errors = new StringBuilder();
        using (var stream = await client.Exec.StartContainerExecAsync(exec.ID, new ContainerExecStartParameters(), cancellationToken).ConfigureAwait(false))
        {
            await stream.WriteAsync(content, 0, content.Length, cancellationToken).ConfigureAwait(false);
            stream.CloseWrite();
            var buffer = new byte[4096];
            while (await stream.ReadOutputAsync(buffer, 0, buffer.Length, cancellationToken).ConfigureAwait(false) is { EOF: false } read)
            {
                errors.Append(Encoding.UTF8.GetString(buffer, 0, read.Count));
            }
        }
        var inspect = await client.Exec.InspectContainerExecAsync(exec.ID, cancellationToken).ConfigureAwait(false);
        if (inspect.ExitCode != 0)
        {
            throw new IOException($"writing {path} in the container failed (exit code {inspect.ExitCode}): {errors.ToString().Trim()}");
        }
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
