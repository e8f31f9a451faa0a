namespace MakinaStates.Image.Sdk.Engine;

/// <summary>Labels the pipeline puts on what it creates, so a build can find and remove its own leftovers.</summary>
public static class BuildLabels
{
    /// <summary>On stage containers: the build that owns them.</summary>
    public const string BuildId = "io.makinastates.build-id";

    /// <summary>On stage containers: the process id of the MSBuild node that owns them.</summary>
    public const string OwnerPid = "io.makinastates.owner-pid";

    /// <summary>On stage containers: the host of the owning process (orphans are judged on that host only).</summary>
    public const string OwnerHost = "io.makinastates.owner-host";

    /// <summary>On stage containers: boot id and pid:start-time of the owning process.</summary>
    public const string OwnerProcess = "io.makinastates.owner-process";

    /// <summary>On stage containers and images: the MsImage they belong to.</summary>
    public const string Image = "io.makinastates.image";

    /// <summary>On stage containers: which stage made them.</summary>
    public const string Stage = "io.makinastates.stage";

    /// <summary>On stage1 images: the hash of everything that shaped them.</summary>
    public const string Stage1Key = "io.makinastates.stage1-key";

    /// <summary>On candidates: the hash of every input of the image (see the up-to-date check of Stage0).</summary>
    public const string InputsKey = "io.makinastates.inputs-key";

    /// <summary>On candidates of corpus projects: the deployed commit.</summary>
    public const string CorpusCommit = "io.makinastates.corpus-commit";

    /// <summary>On the stage0 builder image: the hash of its Dockerfile.</summary>
    public const string Stage0Key = "io.makinastates.stage0-key";
}
