namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Long operations (base creation, import, injection, commit, stage scripts) say what they are doing and how far every
/// 10 seconds, so a build never looks hung. The one periodic logger: its lines come from a timer thread, and none comes
/// once <see cref="Dispose"/> returned, since MSBuild's logger throws (or loses the line) after the task returned.
/// </summary>
public sealed class TransferProgress : IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);
    private readonly object _gate = new();
    private readonly Timer _timer;
    private bool _stopped;

    private TransferProgress(Func<TimeSpan, string> describe, Action<string> log, TimeSpan interval)
    {
        var started = DateTime.UtcNow;
        _timer = new Timer(_ =>
        {
            lock (_gate)
            {
                if (!_stopped)
                {
                    log(describe(DateTime.UtcNow - started));
                }
            }
        }, null, interval, interval);
    }

    /// <summary>Reports <paramref name="describe"/>(elapsed) every 10 s (or <paramref name="interval"/>) until disposed.</summary>
    /// <param name="log">Called from a timer thread, never after <see cref="Dispose"/> returned.</param>
    public static TransferProgress Every(Func<TimeSpan, string> describe, Action<string> log, TimeSpan? interval = null) =>
        new(describe, log, interval ?? Interval);

    public static string Megabytes(long bytes) => $"{bytes / 1048576.0:0.0} MB";

    public void Dispose()
    {
        // Timer.Dispose does not wait for a callback in progress: taking the gate does, so a line being written
        // ends before the task (and its logger) may finish, and none starts after.
        lock (_gate)
        {
            _stopped = true;
        }
        _timer.Dispose();
    }

    /// <summary>A read-only pass-through stream that counts what was read (what the engine received).</summary>
    public sealed class CountingStream(Stream inner) : Stream
    {
        private long _count;

        public long Count => Interlocked.Read(ref _count);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Counted(inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Counted(await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        /// <summary>
        /// The HTTP upload copies the body with this, one chunk per read: 1 MiB reads instead of the default 80 KiB cut
        /// a large injection's system calls (and chunk headers) by ten.
        /// </summary>
        public override async Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
        {
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(bufferSize, 1 << 20));
            try
            {
                int read;
                while ((read = await ReadAsync(buffer.AsMemory(), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }

        private int Counted(int read)
        {
            Interlocked.Add(ref _count, read);
            return read;
        }
    }
}
