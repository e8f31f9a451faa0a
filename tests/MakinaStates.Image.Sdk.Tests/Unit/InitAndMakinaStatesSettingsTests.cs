using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>"running systemd or not", "with or WITHOUT makina-states": how MsInit and MsMakinaStates resolve.</summary>
[TestClass]
public sealed class InitAndMakinaStatesSettingsTests
{
    [TestMethod]
    [DataRow("auto", "/sbin/init", "systemd")]
    [DataRow("", "init", "systemd")]
    [DataRow("auto", "/usr/sbin/init", "systemd")]
    [DataRow("auto", "/lib/systemd/systemd --log-level=debug", "systemd")]
    [DataRow("auto", "/usr/bin/sleep infinity", "none")]
    [DataRow("auto", "/opt/app/init-db.sh", "none")]
    [DataRow("none", "/sbin/init", "none")]
    [DataRow("Systemd", "/usr/bin/sleep infinity", "systemd")]
    public void Init_resolves_from_the_command(string setting, string command, string expected) =>
        Assert.AreEqual(expected, InitSystem.Resolve(setting, command));

    [TestMethod]
    public void Other_init_is_MSI0019()
    {
        var e = Assert.ThrowsExactly<ImageBuildException>(() => InitSystem.Resolve("openrc", "/sbin/init"));
        Assert.AreEqual(MsiCodes.SettingChoiceInvalid, e.Code);
        StringAssert.Contains(e.Message, "MsInit 'openrc' is not one of auto, systemd, none");
    }

    private static readonly ImageReference Plain = ImageReference.Parse("mycompany/app", "MsImage");

    [TestMethod]
    [DataRow("auto", "", false, "mycompany/app", false)]
    [DataRow("auto", "", true, "mycompany/app", true)]
    [DataRow("auto", "", false, "makinacorpus/makina-states-debian-bookworm:latest", true)]
    [DataRow("auto", "", false, "makinacorpus/makina-states-debian-trixie", false)]
    [DataRow("true", "", false, "mycompany/app", true)]
    [DataRow("false", "", true, "mycompany/app", false)]
    [DataRow("false", "yes", false, "mycompany/app", true)]
    [DataRow("", "", false, "mycompany/app", false)]
    public void Makina_states_step_runs_as_the_seed_says(string setting, string force, bool corpus, string image, bool runs) =>
        Assert.AreEqual(runs, MakinaStatesStep.Resolve(setting, force, corpus, ImageReference.Parse(image, "MsImage"), "debian", "bookworm").Runs);

    [TestMethod]
    public void Makina_states_decision_says_why_and_other_values_are_MSI0019()
    {
        StringAssert.Contains(MakinaStatesStep.Resolve("auto", "", true, Plain, "debian", "bookworm").Reason, "corpus project");
        StringAssert.Contains(MakinaStatesStep.Resolve("true", "1", false, Plain, "debian", "bookworm").Reason, "MsMakinaStatesBuildForce");
        var e = Assert.ThrowsExactly<ImageBuildException>(() => MakinaStatesStep.Resolve("yes", "", false, Plain, "debian", "bookworm"));
        Assert.AreEqual(MsiCodes.SettingChoiceInvalid, e.Code);
        StringAssert.Contains(e.Message, "MS_MAKINASTATES");
    }
}
