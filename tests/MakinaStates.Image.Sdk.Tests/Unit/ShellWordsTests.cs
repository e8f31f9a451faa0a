using MakinaStates.Image.Sdk.Settings;

namespace MakinaStates.Image.Sdk.Tests.Unit;

[TestClass]
public sealed class ShellWordsTests
{
    [TestMethod]
    public void Splits_like_a_shell()
    {
        CollectionAssert.AreEqual(new[] { "/sbin/init" }, ShellWords.Split("/sbin/init").ToArray());
        CollectionAssert.AreEqual(new[] { "-e", "A=b c", "--label", "x=it's", "d\"q" }, ShellWords.Split("-e 'A=b c'  --label \"x=it's\" d\\\"q").ToArray());
        CollectionAssert.AreEqual(new[] { "" }, ShellWords.Split("''").ToArray());
        Assert.AreEqual(0, ShellWords.Split("   ").Count);
    }

    [TestMethod]
    public void Unterminated_quote_is_an_error()
    {
        Assert.ThrowsExactly<FormatException>(() => ShellWords.Split("-e 'A=b"));
    }
}
