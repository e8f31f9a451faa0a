using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class AptMirrorDiscoveryTests
{
    private string _apt = "";

    [TestInitialize]
    public void CreateAptFolder()
    {
        _apt = Directory.CreateTempSubdirectory("apt-").FullName;
        Directory.CreateDirectory(Path.Combine(_apt, "sources.list.d"));
    }

    [TestCleanup]
    public void RemoveAptFolder() => Directory.Delete(_apt, recursive: true);

    [TestMethod]
    public void Reads_deb822_sources_and_skips_security_and_other_suites()
    {
        File.WriteAllText(Path.Combine(_apt, "sources.list.d", "debian.sources"), """
            Types: deb
            URIs: http://mirror.invalid/debian-security
            Suites: bookworm-security
            Components: main

            Types: deb deb-src
            # a comment
            URIs: http://mirror.invalid/debian/
            Suites: bookworm bookworm-updates
            Components: main
            """);
        Assert.AreEqual("http://mirror.invalid/debian", AptMirrorDiscovery.FindMirror("bookworm", _apt));
        Assert.IsNull(AptMirrorDiscovery.FindMirror("trixie", _apt));
    }

    [TestMethod]
    public void Reads_one_line_sources_with_options()
    {
        File.WriteAllText(Path.Combine(_apt, "sources.list"), """
            # deb http://commented.invalid/debian bookworm main
            deb-src http://src.invalid/debian bookworm main
            deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://one.invalid/debian bookworm main contrib
            """);
        Assert.AreEqual("http://one.invalid/debian", AptMirrorDiscovery.FindMirror("bookworm", _apt));
    }

    [TestMethod]
    public void Prefers_the_distributions_own_archive_over_a_vendor_repository_naming_the_release()
    {
        File.WriteAllText(Path.Combine(_apt, "sources.list.d", "azure-cli.list"), "deb [arch=amd64] https://vendor.invalid/repos/azure-cli/ bookworm main\n");
        File.WriteAllText(Path.Combine(_apt, "sources.list.d", "b-extras.list"), "deb http://extras.invalid/apt bookworm contrib\n");
        File.WriteAllText(Path.Combine(_apt, "sources.list.d", "debian.sources"), "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n");
        Assert.AreEqual("http://mirror.invalid/debian", AptMirrorDiscovery.FindMirror("bookworm", _apt));
    }

    [TestMethod]
    public void Ignores_disabled_files_and_paragraphs()
    {
        File.WriteAllText(Path.Combine(_apt, "sources.list.d", "old.list.disabled"), "deb http://disabled.invalid/debian bookworm main\n");
        File.WriteAllText(Path.Combine(_apt, "sources.list.d", "x.sources"), "Enabled: no\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\n");
        Assert.IsNull(AptMirrorDiscovery.FindMirror("bookworm", _apt));
    }

    [TestMethod]
    public void Finds_this_hosts_own_mirror()
    {
        // The machine the tests run on is a Debian bookworm host with apt sources (as CI's is).
        var mirror = AptMirrorDiscovery.FindMirror("bookworm");
        Assert.IsNotNull(mirror, "no bookworm source in /etc/apt");
        Assert.IsTrue(Uri.TryCreate(mirror, UriKind.Absolute, out _), mirror);
    }
}
