using System.Text.Json;
using MakinaStates.Image.Sdk.Sbom;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>The bill of materials' pieces: dpkg's status, Debian copyright files, and the CycloneDX document.</summary>
[TestClass]
public sealed class SbomTests
{
    // Shaped like a bookworm status file: a description with continuation lines (and a " ." paragraph break), a
    // Source with its own version (a binNMU), a package removed but for its config files, and a Multi-Arch pair.
    private const string Status = """
        Package: libc6
        Status: install ok installed
        Priority: optional
        Section: libs
        Installed-Size: 12986
        Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
        Architecture: amd64
        Multi-Arch: same
        Source: glibc
        Version: 2.36-9+deb12u10
        Depends: libgcc-s1
        Description: GNU C Library: Shared libraries
         Contains the standard libraries that are used by nearly all programs on
         the system.
         .
         This package includes shared versions of the standard C library.

        Package: libc6
        Status: install ok installed
        Architecture: i386
        Multi-Arch: same
        Source: glibc
        Version: 2.36-9+deb12u10
        Description: GNU C Library: Shared libraries

        Package: libpython3.11-minimal
        Status: install ok installed
        Architecture: amd64
        Source: python3.11 (3.11.2-6+deb12u6)
        Version: 3.11.2-6+deb12u6+b1
        Conffiles:
         /etc/python3.11/sitecustomize.py 6b3b2a4c2f1f0f0e0d0c0b0a09080706 obsolete

        Package: nano
        Status: deinstall ok config-files
        Architecture: amd64
        Version: 7.2-1+deb12u1
        Conffiles:
         /etc/nanorc 4a1b2c3d4e5f60718293a4b5c6d7e8f9

        Package: half
        Status: install reinstreq half-installed
        Architecture: amd64
        Version: 1.0-1

        Package: libgcrypt20
        Status: install ok installed
        Architecture: amd64
        Version: 1.10.1-3
        Description: LGPL Crypto library - runtime library
        """;

    private const string MachineReadable = """
        Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
        Upstream-Name: zlib
        Source: http://zlib.net/

        Files: debian/*
        Copyright: 2000-2005 Mark Brown
        License: GPL-2+

        Files: *
        Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
        License: Zlib
         This software is provided 'as-is', without any express or implied
         warranty.

        License: GPL-2+
         On Debian systems, the complete text of the GNU General Public License
         version 2 can be found in "/usr/share/common-licenses/GPL-2".
        """;

    [TestMethod]
    public void Status_keeps_installed_packages_with_their_source()
    {
        var packages = DpkgStatus.Parse(Status);
        CollectionAssert.AreEqual(
            new[] { "libc6:amd64", "libc6:i386", "libgcrypt20:amd64", "libpython3.11-minimal:amd64" },
            packages.Select(p => $"{p.Name}:{p.Architecture}").ToArray(),
            "config-files and half-installed stanzas are left out; a Multi-Arch pair is two packages");
        Assert.AreEqual(new DpkgPackage("libc6", "2.36-9+deb12u10", "amd64", "glibc", "2.36-9+deb12u10"), packages[0]);
        Assert.AreEqual(new DpkgPackage("libpython3.11-minimal", "3.11.2-6+deb12u6+b1", "amd64", "python3.11", "3.11.2-6+deb12u6"), packages[3]);
        Assert.AreEqual(new DpkgPackage("libgcrypt20", "1.10.1-3", "amd64", "libgcrypt20", "1.10.1-3"), packages[2], "no Source: the package is its own source");
    }

    [TestMethod]
    public void Status_reads_crlf_and_ignores_a_repeated_stanza()
    {
        var text = "Package: a\r\nStatus: install ok installed\r\nArchitecture: all\r\nVersion: 1\r\n\r\n"
            + "Package: a\r\nStatus: install ok installed\r\nArchitecture: all\r\nVersion: 2\r\n";
        var package = DpkgStatus.Parse(text).Single();
        Assert.AreEqual("1", package.Version);
    }

    [TestMethod]
    public void Machine_readable_copyright_gives_the_license_of_files_star()
    {
        Assert.AreEqual("Zlib", DebianCopyright.LicenseExpression(MachineReadable));
    }

    [TestMethod]
    public void Without_files_star_the_first_files_paragraph_with_a_license_counts()
    {
        var text = """
            Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

            Files: src/*
            Copyright: 2020 Someone
            License: GPL-2+ or Artistic

            Files: doc/*
            License: GFDL-1.3
            """;
        Assert.AreEqual("GPL-2+ or Artistic", DebianCopyright.LicenseExpression(text));
    }

    [TestMethod]
    public void Free_text_copyright_gives_no_license()
    {
        var text = """
            This is the Debian prepackaged version of GNU sed.

            Copyright (C) 1998-2022 Free Software Foundation, Inc.
            License: GPL-3+
            """;
        Assert.IsNull(DebianCopyright.LicenseExpression(text), "a License line in prose is not a claim to repeat");
        Assert.IsNull(DebianCopyright.LicenseExpression("Format-Specification: http://svn.debian.org/wsvn/dep/web/deps/dep5.mdwn?op=file&rev=135\n\nFiles: *\nLicense: MIT\n"),
            "a DEP-5 draft is not copyright-format 1.0");
        Assert.IsNull(DebianCopyright.LicenseExpression(""));
    }

    [TestMethod]
    public void Same_input_makes_the_same_bytes()
    {
        var first = Sample();
        var second = Sample(reverse: true);
        CollectionAssert.AreEqual(first, second, "the order packages are given in does not show");
        Assert.AreEqual(CycloneDxDocument.SerialNumber(ImageId), CycloneDxDocument.SerialNumber(ImageId));
        Assert.AreNotEqual(CycloneDxDocument.SerialNumber(ImageId), CycloneDxDocument.SerialNumber(ImageId + "0"));
    }

    [TestMethod]
    public void Document_has_the_cyclonedx_header_and_the_image()
    {
        using var document = JsonDocument.Parse(Sample());
        var root = document.RootElement;
        CollectionAssert.AreEqual(new[] { "bomFormat", "specVersion", "serialNumber", "version", "metadata", "components" },
            root.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.AreEqual("CycloneDX", root.GetProperty("bomFormat").GetString());
        Assert.AreEqual("1.6", root.GetProperty("specVersion").GetString());
        StringAssert.Matches(root.GetProperty("serialNumber").GetString(),
            new System.Text.RegularExpressions.Regex("^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"));
        var metadata = root.GetProperty("metadata");
        Assert.AreEqual("2024-11-30T20:53:20Z", metadata.GetProperty("timestamp").GetString());
        Assert.AreEqual(CycloneDxDocument.ToolName, metadata.GetProperty("tools").GetProperty("components")[0].GetProperty("name").GetString());
        var image = metadata.GetProperty("component");
        Assert.AreEqual("container", image.GetProperty("type").GetString());
        Assert.AreEqual(ImageId, image.GetProperty("version").GetString());

        using var timeless = JsonDocument.Parse(CycloneDxDocument.Create("app:1", ImageId, [], []));
        Assert.IsFalse(timeless.RootElement.GetProperty("metadata").TryGetProperty("timestamp", out _), "no epoch, no time");
    }

    [TestMethod]
    public void Components_are_sorted_with_encoded_purls_licenses_and_source()
    {
        using var document = JsonDocument.Parse(Sample());
        var components = document.RootElement.GetProperty("components").EnumerateArray().ToArray();
        var refs = components.Select(c => c.GetProperty("bom-ref").GetString()!).ToArray();
        CollectionAssert.AreEqual(refs.Order(StringComparer.Ordinal).ToArray(), refs);
        CollectionAssert.Contains(refs, "pkg:deb/debian/libfoo%2B%2B1@1%3A2.3%2Bdfsg-1~bpo12%2B1?arch=amd64&distro=debian-bookworm",
            "an epoch's ':' and the '+' of a name or version are percent-encoded");
        CollectionAssert.Contains(refs, "pkg:nuget/Newtonsoft.Json@13.0.3");

        var libfoo = components.Single(c => c.GetProperty("name").GetString() == "libfoo++1");
        Assert.AreEqual("1:2.3+dfsg-1~bpo12+1", libfoo.GetProperty("version").GetString(), "the version itself stays as dpkg has it");
        Assert.AreEqual(libfoo.GetProperty("bom-ref").GetString(), libfoo.GetProperty("purl").GetString());
        Assert.AreEqual("GPL-2+ or Artistic", libfoo.GetProperty("licenses")[0].GetProperty("expression").GetString());
        var properties = libfoo.GetProperty("properties").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!, p => p.GetProperty("value").GetString());
        Assert.AreEqual("foo", properties["debian:source"]);
        Assert.AreEqual("2.3+dfsg-1~bpo12+1", properties["debian:source-version"]);

        var zlib = components.Single(c => c.GetProperty("name").GetString() == "zlib1g");
        Assert.AreEqual("Zlib", zlib.GetProperty("licenses")[0].GetProperty("license").GetProperty("id").GetString(), "an exact SPDX id is an id");
        var unknown = components.First(c => c.GetProperty("name").GetString() == "libc6");
        Assert.IsFalse(unknown.TryGetProperty("licenses", out _), "no machine-readable copyright, no license claimed");
        Assert.AreEqual(1, components.Count(c => c.GetProperty("name").GetString() == "Newtonsoft.Json"), "a package given twice is one component");
    }

    private const string ImageId = "sha256:5d0da3dc976460b72c77d94c8a1ad043720b0416bfc16c52c45d4847e53fadb6";

    private static byte[] Sample(bool reverse = false)
    {
        DebianComponent[] debian =
        [
            new(new DpkgPackage("libfoo++1", "1:2.3+dfsg-1~bpo12+1", "amd64", "foo", "2.3+dfsg-1~bpo12+1"), "GPL-2+ or Artistic"),
            new(new DpkgPackage("zlib1g", "1:1.2.13.dfsg-1", "amd64", "zlib", "1:1.2.13.dfsg-1"), "Zlib"),
            .. DpkgStatus.Parse(Status).Select(p => new DebianComponent(p, null)),
        ];
        NuGetComponent[] nuget = [new("Newtonsoft.Json", "13.0.3"), new("Microsoft.Extensions.Hosting", "10.0.0"), new("Newtonsoft.Json", "13.0.3")];
        if (reverse)
        {
            Array.Reverse(debian);
            Array.Reverse(nuget);
        }
        return CycloneDxDocument.Create("registry.example/app:1", ImageId, debian, nuget, "bookworm",
            DateTimeOffset.FromUnixTimeSeconds(1733000000), toolVersion: "1.0.0");
    }
}
