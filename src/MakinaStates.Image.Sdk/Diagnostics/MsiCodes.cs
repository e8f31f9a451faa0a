namespace MakinaStates.Image.Sdk.Diagnostics;

/// <summary>
/// Every diagnostic code the SDK emits. Ranges follow the pipeline so a code tells where it came from:
/// MSI00xx settings and Stage0, MSI01xx the engine, MSI1xxx Stage1, MSI2xxx Stage2, MSI3xxx Stage3, MSI4xxx the push,
/// MSI5xxx the archive and the bill of materials.
/// </summary>
public static class MsiCodes
{
    public const string ImageMissing = "MSI0001";
    public const string ImageInvalid = "MSI0002";
    public const string CommandEmpty = "MSI0003";
    public const string MirrorNotFound = "MSI0004";
    public const string DataDirNotWritable = "MSI0005";
    public const string InjectedVolumeMissing = "MSI0006";
    public const string TargetPathInvalid = "MSI0007";
    public const string StageScriptMissing = "MSI0008";
    public const string Cancelled = "MSI0009";
    /// <summary>Raised by Sdk.targets (an Error task) before Stage0 runs.</summary>
    public const string ReadOnlySetting = "MSI0010";
    public const string DockerArgsInvalid = "MSI0011";
    public const string ScriptLineEndings = "MSI0012";
    public const string SecretInvalid = "MSI0013";
    public const string CorpusUncommitted = "MSI0014";
    public const string CorpusWithoutCommit = "MSI0015";
    public const string GitCheckoutFailed = "MSI0016";
    public const string ImageConfigInvalid = "MSI0017";

    /// <summary>Raised by Sdk.targets (an Error task) on a .NET Framework MSBuild.</summary>
    public const string MSBuildRuntimeUnsupported = "MSI0018";
    public const string SettingChoiceInvalid = "MSI0019";
    public const string PlatformsInvalid = "MSI0020";
    public const string SourceDateEpochInvalid = "MSI0021";
    public const string ArchivePathInvalid = "MSI0022";
    public const string ArchiveFormatOnePlatform = "MSI0023";
    public const string ImageDirAmbiguous = "MSI0024";
    /// <summary>A .salt/ folder in an image dir that is not a git clone: not a corpus project, so .salt/ is not used.</summary>
    public const string SaltWithoutGit = "MSI0025";

    public const string EngineUnreachable = "MSI0101";
    public const string DockerHostInvalid = "MSI0102";
    public const string EngineRefused = "MSI0103";
    public const string EngineOrHostFailure = "MSI0104";
    public const string EngineTlsFailed = "MSI0105";
    public const string EngineTlsFilesInvalid = "MSI0106";
    public const string DockerContextInvalid = "MSI0107";
    public const string EngineDoesNotShareFiles = "MSI0108";
    public const string EngineCannotRunSystemd = "MSI0109";
    /// <summary>The image platform is not the engine's and nothing emulates it: no qemu binfmt_misc entry with the F flag.</summary>
    public const string PlatformNotEmulated = "MSI0110";
    public const string SshMissing = "MSI0111";
    public const string SshHostKeyNotTrusted = "MSI0112";
    public const string SshAuthenticationRefused = "MSI0113";
    public const string SshEngineNotFound = "MSI0114";

    public const string BaseCreationFailed = "MSI1001";
    public const string BaseImportFailed = "MSI1002";
    public const string BaseImageMissing = "MSI1003";
    public const string Stage1ScriptFailed = "MSI1004";
    public const string BaseCannotBeCreated = "MSI1005";
    public const string Stage0BuilderMissing = "MSI1006";
    public const string Stage0BuilderFailed = "MSI1007";
    public const string BaseImportRefused = "MSI1008";
    /// <summary>A warning: the image was built, the base tarball for the next builds could not be kept.</summary>
    public const string BaseTarballNotWritten = "MSI1009";

    public const string UnreadableFile = "MSI2002";
    public const string SystemdDidNotBoot = "MSI2003";
    public const string Stage2ScriptFailed = "MSI2004";
    public const string SpecialFileSkipped = "MSI2005";
    public const string MakinaStatesUnreachable = "MSI2006";
    public const string ExistingFolderMetadataFailed = "MSI2007";
    public const string InjectedFileChangedDuringBuild = "MSI2008";
    public const string InjectedFileChangedWhileSent = "MSI2009";

    public const string Stage3ScriptFailed = "MSI3001";
    public const string SnapshotFailed = "MSI3003";
    public const string AclSaveFailed = "MSI3004";
    public const string AclsNotRestoredWithoutInit = "MSI3005";
    public const string XattrListInvalid = "MSI3006";
    public const string TopLayerRewriteFailed = "MSI3007";

    // MSI4xxx: the push after Stage3.
    public const string PushSettingsInvalid = "MSI4001";
    public const string RegistryUnreachable = "MSI4002";
    public const string RegistryUnauthorized = "MSI4003";
    public const string RegistryBlobUnknown = "MSI4004";
    public const string PushFailed = "MSI4005";
    public const string RegistryCredentialsInvalid = "MSI4006";

    // MSI5xxx: what is written beside the candidate (the archive, the bill of materials).
    public const string ArchiveWriteFailed = "MSI5001";
    public const string SbomFailed = "MSI5002";
}
