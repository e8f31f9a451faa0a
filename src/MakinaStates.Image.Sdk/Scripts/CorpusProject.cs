using System.Diagnostics;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Scripts;

/// <summary>
/// A corpus project (the seed's "integration with corpus projects"): an image directory that is a git clone with a
/// .salt/ folder. Its HEAD commit is deployed as /srv/projects/app/project; git runs on the build host, so the image
/// needs no git and a remote engine gets the work tree through the archive API.
/// </summary>
public static class CorpusProject
{
    public const string DeployPath = "/srv/projects/app/project";

    public static string HeadCommit(string directory)
    {
        var (code, output) = Git(directory, "rev-parse", "--verify", "HEAD^{commit}");
        return code == 0 ? output.Trim()
            : throw new ImageBuildException(MsiCodes.CorpusWithoutCommit, MsiMessages.Format("CorpusWithoutCommit", directory, output.Trim()), directory);
    }

    /// <summary>
    /// Paths (relative to the clone, with '/') with changes not in HEAD: they are not deployed. Files git ignores are
    /// not changes, and neither is anything under <paramref name="writtenByTheSdk"/> (full paths; a folder ends with a
    /// separator): what the build writes into the clone itself (obj/, Stage0's copies of the scripts) changes with
    /// every build, committed or not, and a warning that always fires teaches people to ignore it.
    /// </summary>
    public static IReadOnlyList<string> UncommittedChanges(string directory, IEnumerable<string> writtenByTheSdk)
    {
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        var sdkPaths = writtenByTheSdk.Select(p => Path.TrimEndingDirectorySeparator(Path.GetRelativePath(root, Path.GetFullPath(p))).Replace('\\', '/')
                + (Path.EndsInDirectorySeparator(p) ? "/" : ""))
            .Where(p => p is not ("." or "./" or ".." or "../") && !p.StartsWith("../", StringComparison.Ordinal))
            .ToList();
        // -z: paths as they are (no quoting of spaces or non-ASCII names); a rename's entry is followed by its old path.
        var (code, output) = Git(directory, "status", "--porcelain=v1", "-z", "--untracked-files=all");
        if (code != 0)
        {
            return [];
        }
        var changes = new List<string>();
        var entries = output.Split('\0');
        for (var i = 0; i < entries.Length; i++)
        {
            var entry = entries[i];
            if (entry.Length < 4)
            {
                continue;
            }
            if (entry[0] is 'R' or 'C')
            {
                i++;
            }
            var path = entry[3..];
            if (!sdkPaths.Any(sdk => sdk.EndsWith('/') ? path.StartsWith(sdk, StringComparison.Ordinal) : path == sdk))
            {
                changes.Add(path);
            }
        }
        return changes;
    }

    /// <summary>A clean work tree of <paramref name="repository"/> at <paramref name="revision"/> in a new temp folder.</summary>
    /// <param name="failure">The error for git's output when it fails (MSI0016 by default).</param>
    public static string CheckOut(string repository, string revision, bool detach, Func<string, ImageBuildException>? failure = null)
    {
        var target = Directory.CreateTempSubdirectory("msimage-git-").FullName;
        var clone = detach
            ? Git(null, "clone", "--quiet", "--no-hardlinks", "--no-checkout", repository, target)
            : Git(null, "clone", "--quiet", "--no-hardlinks", "--branch", revision, repository, target);
        if (clone.Code == 0 && detach)
        {
            clone = Git(target, "checkout", "--quiet", "--detach", revision);
        }
        if (clone.Code == 0 && !OperatingSystem.IsWindows())
        {
            // The temp folder is 0700; in the image the work tree is a normal project folder.
            File.SetUnixFileMode(target, (UnixFileMode)Convert.ToInt32("755", 8));
        }
        if (clone.Code != 0)
        {
            Directory.Delete(target, recursive: true);
            throw failure?.Invoke(clone.Output.Trim())
                ?? new ImageBuildException(MsiCodes.GitCheckoutFailed, MsiMessages.Format("GitCheckoutFailed", repository, revision, clone.Output.Trim()), repository);
        }
        return target;
    }

    /// <summary>A git URL that names something on this host (a path or file: URL): the container cannot see it.</summary>
    public static string? LocalRepository(string gitUrl)
    {
        if (gitUrl.StartsWith("file://", StringComparison.Ordinal))
        {
            return new Uri(gitUrl).LocalPath;
        }
        return Path.IsPathRooted(gitUrl) || gitUrl.StartsWith("./", StringComparison.Ordinal) || gitUrl.StartsWith("../", StringComparison.Ordinal)
            ? Path.GetFullPath(gitUrl)
            : null;
    }

    internal static (int Code, string Output) Git(string? directory, params string[] arguments)
    {
        var start = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (directory is not null)
        {
            start.ArgumentList.Add("-C");
            start.ArgumentList.Add(directory);
        }
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        // The checkout is the build's: no prompts, no hooks of the user's global config.
        start.Environment["GIT_TERMINAL_PROMPT"] = "0";
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output.Result + error);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ImageBuildException(MsiCodes.GitCheckoutFailed, MsiMessages.Format("GitMissing", e.Message));
        }
    }
}
