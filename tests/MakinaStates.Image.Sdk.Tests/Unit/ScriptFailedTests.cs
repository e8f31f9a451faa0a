using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Tests.Unit;

/// <summary>"A script failed, with its last lines": one factory, so every such error shows the lines the user needs.</summary>
[TestClass]
public sealed class ScriptFailedTests
{
    [TestMethod]
    public void The_error_carries_code_file_exit_code_and_the_last_lines_one_a_line()
    {
        var e = ImageBuildException.ScriptFailed(MsiCodes.Stage1ScriptFailed, "Stage1ScriptFailed", 3, ["apt-get: no", "E: broken"], "/x/stage1.sh");

        Assert.AreEqual(MsiCodes.Stage1ScriptFailed, e.Code);
        Assert.AreEqual("/x/stage1.sh", e.File);
        Assert.AreEqual($"stage1.sh failed with exit code 3. Last lines:{Environment.NewLine}apt-get: no{Environment.NewLine}E: broken", e.Message);
    }

    [TestMethod]
    public void Details_follow_the_exit_code_and_lines()
    {
        var e = ImageBuildException.ScriptFailed(MsiCodes.ExistingFolderMetadataFailed, "ExistingFolderMetadataFailed", 1, ["setfacl: not found"],
            details: [2, "all"]);

        StringAssert.StartsWith(e.Message, "Giving 2 folder(s) the image already has the injected folders' ACLs and xattrs (MsExistingFolderMetadata=all) failed with exit code 1:");
        StringAssert.EndsWith(e.Message, $"Last lines:{Environment.NewLine}setfacl: not found");
        Assert.IsNull(e.File);
    }
}
