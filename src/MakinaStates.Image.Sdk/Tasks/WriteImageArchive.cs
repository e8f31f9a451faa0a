using MakinaStates.Image.Sdk.Archive;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// MsArchiveOutputPath: the candidate (one platform's, or every platform's of a multi-platform build) as one archive
/// file, named candidate and every MsImageTags tag, with each platform's bill of materials in it. An archive already
/// there that holds exactly this is kept (read by its headers and small JSON entries only); anything else is written
/// again, streamed from the engine, under a temporary name first.
/// </summary>
public sealed class WriteImageArchive : SettingsTask
{
    /// <summary>MsImageCandidate items: ImageId and Platform metadata, one per platform.</summary>
    [Required] public ITaskItem[] Candidates { get; set; } = [];

    /// <summary>MsImageTags items: more names of the same image.</summary>
    public ITaskItem[] Tags { get; set; } = [];

    /// <summary>MsSbom items (Platform metadata): written into the archive as sbom/&lt;arch&gt;.cdx.json.</summary>
    public ITaskItem[] Sboms { get; set; } = [];

    /// <summary>The MsImageArchive item: the file, with Format, Digest, ImageIds and References metadata.</summary>
    [Output] public ITaskItem[] Archive { get; private set; } = [];

    protected override async System.Threading.Tasks.Task ExecuteAsync(CancellationToken cancellationToken)
    {
        if (Build.Archive is not { } output)
        {
            return;
        }
        var request = new ArchiveRequest(output.Path, output.Format == ArchiveOutput.Docker ? ArchiveFormat.Docker : ArchiveFormat.Oci, Build.Image.Repository,
            ["candidate", .. Tags.Select(t => t.ItemSpec.Trim())],
            [.. Candidates.Select(c => new ArchivedImage(c.GetMetadata("ImageId"), ImagePlatform.Parse(c.GetMetadata("Platform"), "MsPlatform")))],
            [.. Sboms.Where(s => File.Exists(s.ItemSpec))
                .Select(s => new ArchiveExtraFile($"sbom/{ImagePlatform.Parse(s.GetMetadata("Platform"), "MsPlatform").Suffix}.cdx.json", File.ReadAllBytes(s.ItemSpec)))
                .OrderBy(f => f.Name, StringComparer.Ordinal)]);
        if (await ImageArchiveContents.ReadAsync(request.Path, cancellationToken).ConfigureAwait(false) is { } existing && existing.Holds(request))
        {
            Log.LogMessage(MessageImportance.Normal, "Archive: {0} already holds {1} ({2}); kept.", request.Path, string.Join(", ", request.References), output.Format);
            Archive = [Item(request, existing.Digest)];
            return;
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        WrittenArchive written;
        try
        {
            request.Validate();
            using var engine = await ConnectEngineAsync(cancellationToken).ConfigureAwait(false);
            written = await ImageArchiveWriter.WriteAsync(engine, request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidDataException or Docker.DotNet.DockerApiException)
        {
            // A full disk is an IOException: the writer removed its temporary file, and an archive already there stays.
            throw new ImageBuildException(MsiCodes.ArchiveWriteFailed, MsiMessages.Format("ArchiveWriteFailed", request.Path, output.Format, e.Message), request.Path, e);
        }
        Log.LogMessage(MessageImportance.High, "Archive: wrote {0} ({1}, {2}, {3}; {4:0.0} s).", written.Path, output.Format,
            Engine.TransferProgress.Megabytes(new FileInfo(written.Path).Length), written.Digest, watch.Elapsed.TotalSeconds);
        Archive = [Item(request, written.Digest)];
    }

    private static TaskItem Item(ArchiveRequest request, string digest)
    {
        var item = new TaskItem(request.Path);
        item.SetMetadata("Format", request.Format == ArchiveFormat.Docker ? ArchiveOutput.Docker : ArchiveOutput.Oci);
        item.SetMetadata("Digest", digest);
        item.SetMetadata("ImageIds", string.Join(",", request.Images.Select(i => i.ImageId)));
        item.SetMetadata("References", string.Join(",", request.References));
        return item;
    }
}
