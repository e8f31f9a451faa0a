using System.IO.Pipelines;
using Docker.DotNet.Models;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>`docker save` and `docker load` streamed through the engine API, for the steps that rewrite a saved image.</summary>
public static class ImageArchive
{
    /// <summary>
    /// The image as `docker save` writes it, read in large blocks: Docker.DotNet's chunked response stream fails
    /// (EndOfStreamException) on a tar reader's small reads across chunk boundaries. Disposing it disposes the response.
    /// </summary>
    public static async Task<Stream> SaveAsync(DockerEngine engine, string reference, CancellationToken cancellationToken)
    {
        var saved = await engine.Client.Images.SaveImageAsync(reference, cancellationToken).ConfigureAwait(false);
        return new BufferedStream(saved, 1 << 20);
    }

    /// <summary>
    /// Loads the archive <paramref name="write"/> writes (streamed through a pipe); the engine's error, or null. Its
    /// messages are read inline (not with Progress&lt;T&gt;, whose callbacks may run after this returned).
    /// </summary>
    public static async Task<string?> LoadAsync(DockerEngine engine, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var pipe = new Pipe();
        string? error = null;
        var load = engine.Client.Images.LoadImageAsync(new ImageLoadParameters { Quiet = true }, pipe.Reader.AsStream(),
            new ImmediateProgress<JSONMessage>(m => error ??= m.Error?.Message), cancellationToken);
        var writing = WriteAsync(pipe.Writer, write, cancellationToken);
        await Task.WhenAll(writing, load).ConfigureAwait(false);
        return error;
    }

    /// <summary>
    /// Removes the image a load replaced under its name (now untagged), unless it is the loaded one; one still used
    /// (a container made from it, another tag) stays.
    /// </summary>
    public static async Task RemoveReplacedAsync(DockerEngine engine, string replacedId, string loadedId)
    {
        if (replacedId == loadedId)
        {
            return;
        }
        await engine.RemoveImageIfPresentAsync(replacedId, CancellationToken.None).ConfigureAwait(false);
    }

    private static async Task WriteAsync(PipeWriter output, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        try
        {
            await using (var target = output.AsStream(leaveOpen: true))
            {
                await write(target, cancellationToken).ConfigureAwait(false);
            }
            await output.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            await output.CompleteAsync(e).ConfigureAwait(false);
            throw;
        }
    }
}
