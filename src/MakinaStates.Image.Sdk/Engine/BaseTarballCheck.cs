using System.Diagnostics;
using System.Formats.Tar;

namespace MakinaStates.Image.Sdk.Engine;

/// <summary>
/// Whether a base tarball reads to its end, asked only after an engine refused to import it: a refusal is the
/// tarball's fault (MSI1002, "delete it") only when the tarball itself is broken; a good base costs a debootstrap.
/// </summary>
public static class BaseTarballCheck
{
    /// <summary>null when it cannot be told here (the tool for its compression is missing).</summary>
    public static bool? IsIntact(string path)
    {
        try
        {
            if (path.EndsWith(".xz", StringComparison.Ordinal) || path.EndsWith(".gz", StringComparison.Ordinal) || path.EndsWith(".tgz", StringComparison.Ordinal))
            {
                // The BCL reads gzip but not xz: both are tested by their own tools, which check every block.
                return Test(path.EndsWith(".xz", StringComparison.Ordinal) ? "xz" : "gzip", path);
            }
            using var reader = new TarReader(File.OpenRead(path));
            while (reader.GetNextEntry() is { } entry)
            {
                entry.DataStream?.CopyTo(Stream.Null);
            }
            return true;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            return false;
        }
    }

    private static bool? Test(string tool, string path)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-t");
        start.ArgumentList.Add(path);
        try
        {
            using var process = Process.Start(start)!;
            process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
