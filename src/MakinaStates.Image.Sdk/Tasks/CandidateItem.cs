using System.Globalization;
using MakinaStates.Image.Sdk.Settings;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace MakinaStates.Image.Sdk.Tasks;

/// <summary>
/// The MsImageCandidate item, made in one place: a build that ran the stages and a build that found the candidate up
/// to date return the same item, with every metadata the README promises.
/// </summary>
public static class CandidateItem
{
    public static ITaskItem Create(BuildDescription build, string imageId, long size)
    {
        var (repository, tag) = ImageReference.SplitTag(build.ImageCandidate);
        var item = new TaskItem(build.ImageCandidate);
        item.SetMetadata("ImageId", imageId);
        item.SetMetadata("Repository", repository);
        item.SetMetadata("Tag", tag);
        item.SetMetadata("Size", size.ToString(CultureInfo.InvariantCulture));
        item.SetMetadata("CommitId", build.CorpusCommit);
        item.SetMetadata("Platform", build.Platform);
        return item;
    }
}
