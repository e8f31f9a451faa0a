using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// Stage0's parameters. The settings themselves come in as MsResolveSettings collected them (<see cref="SettingsTask"/>);
/// everything Stage0 decides goes into the build description (the BuildDescription file), which every later task
/// reads: the outputs below are only what the targets themselves need.
/// </summary>
public sealed partial class Stage0PrepareBuild
{
    [Required] public string SdkStageScriptsDirectory { get; set; } = "";

    /// <summary>This build's obj/msimage/ folder (the content hash cache, the candidate's key alias).</summary>
    [Required] public string IntermediateDirectory { get; set; } = "";

    /// <summary>The project's obj/ (BaseIntermediateOutputPath): written by builds, never a corpus project's change.</summary>
    public string BaseIntermediateDirectory { get; set; } = "";

    /// <summary>Where the host's apt sources live (a test points it elsewhere).</summary>
    public string AptConfigurationDirectory { get; set; } = "/etc/apt";

    /// <summary>The description written (BuildDescription, once written): the later stages' one input.</summary>
    [Output] public string DescriptionFile { get; private set; } = "";

    /// <summary>The candidate carries this build's inputs key: Stages 1 to 3 do not run.</summary>
    [Output] public bool UpToDate { get; private set; }

    /// <summary>When up to date, the candidate (<see cref="CandidateItem"/>, as Stage3 returns it after a build).</summary>
    [Output] public ITaskItem? Candidate { get; private set; }
}
