using System.Text.RegularExpressions;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>The seed's report of the effective settings, as the stage scripts see them.</summary>
public sealed partial class Stage0PrepareBuild
{
    [GeneratedRegex(@"((?:-e|--env)(?:=|\s+)['""]?[^=\s'""]+)=\S+")]
    private static partial Regex DockerArgsEnvironmentValue();

    /// <summary>Every MS_* value (the -e values of MsDockerArgs masked: they may be secrets), then the engine.</summary>
    private void ReportSettings(DockerEndpoint endpoint)
    {
        var build = Build;
        Log.LogMessage(MessageImportance.High, "MakinaStates image build {0}", build.BuildId);
        foreach (var (name, value) in build.SeedSettings())
        {
            var shown = name switch
            {
                "MS_OS_MIRROR" when value.Length == 0 => "(none found; not needed while the base exists)",
                "MS_BASEIMAGE" => build.BaseImagePath,
                "MS_DOCKER_ARGS" => DockerArgsEnvironmentValue().Replace(value, "$1=***"),
                _ => value,
            };
            Log.LogMessage(MessageImportance.Normal, "  {0,-20} {1}", name, shown);
        }
        Log.LogMessage(MessageImportance.Normal, "  {0,-20} {1}", "DOCKER_HOST", endpoint.Display);
        Log.LogMessage(MessageImportance.Normal, "  {0,-20} {1}", "SOURCE_DATE_EPOCH", build.SourceDateEpoch?.Describe() ?? "");
        Log.LogMessage(MessageImportance.Normal, "  {0,-20} {1}", "layers", build.RewritesLayers
            ? "written again after each commit: ACLs and xattrs in, times clamped to the epoch (MsRewriteLayers=false: as committed)"
            : "as committed (MsRewriteLayers=false): ACLs are put back at boot only, times are not clamped");
    }
}
