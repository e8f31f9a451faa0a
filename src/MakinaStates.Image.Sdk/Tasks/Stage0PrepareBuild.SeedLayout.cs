using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// The seed's layout, as evaluation found it (Sdk.Settings.targets decides the folders once; Stage0 only says which it
/// took and why, and refuses an ambiguous one), and the seed's docker-run habits that MsDockerArgs accepts.
/// </summary>
public sealed partial class Stage0PrepareBuild
{
    /// <summary>How evaluation chose MsImageDir: set, seed ($(MsDataDir)/$(MsImage)/), project, or both (ambiguous).</summary>
    public string ImageDirOrigin { get; set; } = "";

    /// <summary>$(MsDataDir)/$(MsImage)/, the seed's image dir (empty without MsImage).</summary>
    public string SeedImageDirectory { get; set; } = "";

    /// <summary>How evaluation chose MsDataDir: set, seed (a data/ folder beside the project with a base tarball), or cache.</summary>
    public string DataDirOrigin { get; set; } = "";

    private void ReportSeedLayout()
    {
        var build = Build;
        switch (DataDirOrigin)
        {
            case "seed":
                Log.LogMessage(MessageImportance.High, "MsDataDir: {0}, the seed's ./data: it holds a baseimage-* tarball and MsDataDir is not set.", build.MsDataDir);
                break;
            case "cache":
                Log.LogMessage(MessageImportance.Normal, "MsDataDir: {0}, the per-user cache (not set, and no data/ folder with a baseimage-* tarball beside the project).", build.MsDataDir);
                break;
        }
        switch (ImageDirOrigin)
        {
            case "both":
                throw new ImageBuildException(MsiCodes.ImageDirAmbiguous,
                    MsiMessages.Format("ImageDirAmbiguous", build.MsImageDir, SeedImageDirectory), build.MsImageDir);
            case "seed":
                Log.LogMessage(MessageImportance.High,
                    "MsImageDir: {0}, the seed's $(MsDataDir)/$(MsImage)/: it holds an image tree, the project folder does not, and MsImageDir is not set.", build.MsImageDir);
                break;
            case "project":
                Log.LogMessage(MessageImportance.Normal, "MsImageDir: {0}, the project folder ({1} holds no image tree).",
                    build.MsImageDir, SeedImageDirectory.Length > 0 ? SeedImageDirectory : "$(MsDataDir)/$(MsImage)/");
                break;
        }
        if (build.DockerRunArguments.DataDirectory is { } seedDataDirectory)
        {
            Log.LogMessage(MessageImportance.Normal, "MsDockerArgs: -v {0}:{1} names the data dir (MS_DATA_DIR); the data dir of this build is {2}.",
                seedDataDirectory, DockerRunArguments.SeedDataPath, build.MsDataDir);
        }
        if (build.DockerRunArguments.ManagedBySdk.Count > 0)
        {
            Log.LogMessage(MessageImportance.Low, "MsDockerArgs: {0} left out: the SDK manages its stage containers (it runs them detached, without a terminal, and removes them itself).",
                string.Join(" ", build.DockerRunArguments.ManagedBySdk));
        }
    }
}
