using System.Runtime.InteropServices;
using System.Text.Json;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.EndToEnd;

/// <summary>
/// The candidate's bill of materials (obj/msimage/&lt;arch&gt;/sbom.cdx.json): valid CycloneDX 1.6 by the CycloneDX
/// library's strict validator, exactly the packages dpkg lists in the candidate, kept while the candidate is, the same
/// bytes when written again for the same image, and none with MsSbom=false.
/// </summary>
[TestClass]
public sealed class BillOfMaterialsTests
{
    private static string Arch => RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "arm64" : "amd64";

    [TestMethod]
    public async Task Sbom_lists_exactly_the_packages_dpkg_lists_validates_and_is_kept_while_the_candidate_is()
    {
        Repository.RequirePackedSdk();
        using var docker = await TestDocker.RequireEngineAsync();
        var image = $"makinastates/test-sbom-{Guid.NewGuid():N}"[..40];
        using var project = new ImageProject(image);
        project.Write("injected_volumes/etc/sbom-test.txt", "one\n");
        var sbom = Path.Combine(project.Directory, "obj", "msimage", Arch, "sbom.cdx.json");
        try
        {
            var build = await project.BuildAsync();
            Assert.IsTrue(build.Succeeded, build.Output);
            StringAssert.Contains(build.Output, $"SBOM: wrote {sbom}");
            Assert.IsNull(CycloneDxClients.ValidationErrors(sbom), "the CycloneDX library's strict 1.6 validation");

            var imageId = await TestDocker.ImageIdAsync(docker, $"{image}:candidate");
            using (var document = JsonDocument.Parse(File.ReadAllBytes(sbom)))
            {
                var root = document.RootElement;
                Assert.AreEqual(imageId, root.GetProperty("metadata").GetProperty("component").GetProperty("bom-ref").GetString());
                var listed = (await TestDocker.RunWithEntrypointAsync(docker, $"{image}:candidate", ["dpkg-query"], ["-W", "-f", "${Package} ${Version} ${Architecture}\n"]))
                    .Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToArray();
                Assert.IsTrue(listed.Length > 50, string.Join('\n', listed));
                var components = root.GetProperty("components").EnumerateArray().ToArray();
                var debian = components.Where(c => c.GetProperty("bom-ref").GetString()!.StartsWith("pkg:deb/debian/", StringComparison.Ordinal))
                    .Select(c => $"{c.GetProperty("name").GetString()} {c.GetProperty("version").GetString()} {Query(c.GetProperty("purl").GetString()!, "arch")}")
                    .Order(StringComparer.Ordinal).ToArray();
                CollectionAssert.AreEqual(listed, debian, "every package dpkg-query lists, and nothing else");
                var os = components.Single(c => c.GetProperty("type").GetString() == "operating-system");
                Assert.AreEqual("debian", os.GetProperty("name").GetString());
                var bash = components.Single(c => c.GetProperty("name").GetString() == "bash");
                Assert.IsTrue(bash.TryGetProperty("licenses", out _), "bash's machine-readable copyright names its license");
            }

            var first = File.ReadAllBytes(sbom);
            var written = File.GetLastWriteTimeUtc(sbom);
            var upToDate = await project.BuildAsync();
            Assert.IsTrue(upToDate.Succeeded, upToDate.Output);
            StringAssert.Contains(upToDate.Output, "is up to date");
            Assert.AreEqual(written, File.GetLastWriteTimeUtc(sbom), "an SBOM of the same candidate is kept");

            File.Delete(sbom);
            var again = await project.BuildAsync();
            Assert.IsTrue(again.Succeeded, again.Output);
            StringAssert.Contains(again.Output, $"SBOM: wrote {sbom}", "a missing SBOM of an up-to-date candidate is written");
            CollectionAssert.AreEqual(first, File.ReadAllBytes(sbom), "the same image gives the same bytes");
            StringAssert.Contains(again.Output, "their licenses from", "the same dpkg status: the licenses kept beside the last SBOM");

            // Licenses kept for another dpkg status (one the image does not have) are not used: every copyright file is
            // read again, and the SBOM is the same as the first.
            var licenses = sbom + ".licenses";
            File.WriteAllLines(licenses, [new string('0', 64), .. File.ReadAllLines(licenses).Skip(1).Select(l => l.StartsWith("bash\t", StringComparison.Ordinal) ? "bash\tBOGUS" : l)]);
            File.Delete(sbom);
            var reread = await project.BuildAsync();
            Assert.IsTrue(reread.Succeeded, reread.Output);
            Assert.IsFalse(reread.Output.Contains("their licenses from", StringComparison.Ordinal), reread.Output);
            CollectionAssert.AreEqual(first, File.ReadAllBytes(sbom), "the licenses read again from the image");

            File.Delete(sbom);
            var without = await project.BuildAsync("-p:MsSbom=false");
            Assert.IsTrue(without.Succeeded, without.Output);
            Assert.IsFalse(File.Exists(sbom), "MsSbom=false writes none");
            Assert.IsFalse(without.Output.Contains("SBOM:", StringComparison.Ordinal), without.Output);
        }
        finally
        {
            await TestDocker.RemoveProjectImagesAsync(docker, image);
        }
    }

    private static string Query(string purl, string name) =>
        purl[(purl.IndexOf('?') + 1)..].Split('&').Select(p => p.Split('=', 2)).Single(p => p[0] == name)[1];
}
