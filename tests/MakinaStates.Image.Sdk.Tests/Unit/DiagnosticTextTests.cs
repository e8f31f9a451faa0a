using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MakinaStates.Image.Sdk.Diagnostics;
using MakinaStates.Image.Sdk.Tests.Support;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>Every diagnostic has its text in Resources/Strings.resx, and every text belongs to a known code.</summary>
[TestClass]
public sealed partial class DiagnosticTextTests
{
    // ScriptFailed formats its text itself (with the exit code and last lines): its name counts as used too.
    [GeneratedRegex("""(?:MsiMessages\.Format\(|ImageBuildException\.ScriptFailed\([^,]+, )"(?<name>[^"]+)"(?<args>[^;]*)""")]
    private static partial Regex FormatCall();

    private static readonly XDocument Resx = XDocument.Load(Path.Combine(Repository.Root, "src/MakinaStates.Image.Sdk/Resources/Strings.resx"));

    private static Dictionary<string, (string Text, string Code)> Texts() =>
        Resx.Root!.Elements("data").ToDictionary(d => (string)d.Attribute("name")!, d => ((string)d.Element("value")!, (string)d.Element("comment")!));

    [TestMethod]
    public void Every_text_used_in_code_exists_and_every_text_has_a_known_code_in_its_stage_range()
    {
        var texts = Texts();
        var codes = typeof(MsiCodes).GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (string)f.GetValue(null)!).ToHashSet();
        var used = Directory.GetFiles(Path.Combine(Repository.Root, "src/MakinaStates.Image.Sdk"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/", StringComparison.Ordinal))
            .SelectMany(f => FormatCall().Matches(File.ReadAllText(f)).Select(m => m.Groups["name"].Value))
            .ToHashSet();
        Assert.IsTrue(used.Count > 30, $"only {used.Count} texts found in code");
        foreach (var name in used)
        {
            Assert.IsTrue(texts.ContainsKey(name), $"'{name}' is used in code but missing from Strings.resx");
        }
        foreach (var (name, (_, code)) in texts)
        {
            Assert.IsTrue(codes.Contains(code), $"'{name}' names code {code}, which MsiCodes does not define");
            Assert.IsTrue(Regex.IsMatch(code, "^MSI[0-9]{4}$"), code);
        }
        foreach (var code in codes)
        {
            Assert.IsTrue(texts.Values.Any(t => t.Code == code) || code is "MSI0010" or "MSI0018", $"{code} has no text (MSI0010 and MSI0018 live in Sdk.targets)");
        }
    }

    [TestMethod]
    public void Texts_format_with_their_arguments()
    {
        foreach (var (name, (text, _)) in Texts())
        {
            var placeholders = Regex.Matches(text, @"\{(\d+)").Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(-1).Max() + 1;
            var formatted = MsiMessages.Format(name, Enumerable.Range(0, placeholders).Select(i => (object)$"<arg{i}>").ToArray());
            Assert.IsFalse(formatted.Contains("{0", StringComparison.Ordinal), name);
        }
    }
}
