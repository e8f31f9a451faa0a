using MakinaStates.Image.Sdk.Sbom;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class NuGetAssetsTests
{
    private const string Assets = """
        {
          "version": 3,
          "targets": {
            "net10.0": {
              "Newtonsoft.Json/13.0.3": { "type": "package" },
              "OnlyWithoutRuntime/1.0.0": { "type": "package" },
              "Lib/1.0.0": { "type": "project" }
            },
            "net10.0/linux-x64": {
              "Newtonsoft.Json/13.0.3": { "type": "package" },
              "runtime.linux-x64.Native/2.0.0": { "type": "package" },
              "Lib/1.0.0": { "type": "project" }
            }
          },
          "project": {
            "frameworks": {
              "net10.0": {
                "downloadDependencies": [
                  { "name": "Microsoft.AspNetCore.App.Runtime.linux-x64", "version": "[10.0.12, 10.0.12]" },
                  { "name": "Microsoft.NETCore.App.Runtime.linux-x64", "version": "[10.0.12, 10.0.12]" },
                  { "name": "Microsoft.NETCore.App.Crossgen2.linux-x64", "version": "[10.0.12, 10.0.12]" }
                ],
                "frameworkReferences": { "Microsoft.NETCore.App": { "privateAssets": "all" } }
              }
            }
          }
        }
        """;

    [TestMethod]
    public void The_runtimes_target_gives_the_packages_and_the_referenced_frameworks_runtime_pack()
    {
        var packages = NuGetAssets.Read(Assets, "linux-x64").Select(p => $"{p.Id}@{p.Version}").ToArray();
        CollectionAssert.AreEqual(new[] { "Microsoft.NETCore.App.Runtime.linux-x64@10.0.12", "Newtonsoft.Json@13.0.3", "runtime.linux-x64.Native@2.0.0" }, packages,
            "projects are not packages; a runtime pack ships only for a referenced framework; tools packs never");
    }

    [TestMethod]
    public void Without_a_target_for_the_runtime_every_targets_packages_count()
    {
        var packages = NuGetAssets.Read(Assets, "linux-arm64").Select(p => p.Id).ToArray();
        CollectionAssert.AreEqual(new[] { "Newtonsoft.Json", "OnlyWithoutRuntime", "runtime.linux-x64.Native" }, packages);
    }
}
