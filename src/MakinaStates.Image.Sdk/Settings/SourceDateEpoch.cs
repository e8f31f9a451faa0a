using System.Globalization;
using MakinaStates.Image.Sdk.Diagnostics;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// MsSourceDateEpoch as Stage0 resolves it: the time every layer the SDK writes is clamped to (file times after it
/// become it; `created` and the layer's history time are it), and where it came from, for the report.
/// Empty (the default): SOURCE_DATE_EPOCH when set, else the time the base was made: reproducible with no
/// configuration, unchanged by unrelated commits, and later than the times packaged files carry (a clamp to 1970
/// would make every packaged .pyc look stale).
/// </summary>
public sealed record SourceDateEpoch(long? Seconds, string Origin)
{
    public const string Now = "now";
    public const string Git = "git";

    /// <summary>The default before the base exists (a cold build): Stage1 takes the time of the base it makes.</summary>
    public const string BaseOrigin = "base";

    public DateTimeOffset? Time => Seconds is { } s ? DateTimeOffset.FromUnixTimeSeconds(s) : null;

    /// <summary>The epoch a setting names; empty leaves it to the base (<see cref="WithBase"/>).</summary>
    public static SourceDateEpoch Resolve(string setting, string projectDirectory)
    {
        var value = setting.Trim();
        if (value.Length == 0)
        {
            return new SourceDateEpoch(null, BaseOrigin);
        }
        if (value.Equals(Now, StringComparison.OrdinalIgnoreCase))
        {
            return new SourceDateEpoch(null, "now: times as the build leaves them");
        }
        if (value.Equals(Git, StringComparison.OrdinalIgnoreCase))
        {
            var (code, output) = Scripts.CorpusProject.Git(projectDirectory, "log", "-1", "--format=%ct %h", "HEAD");
            var words = output.Trim().Split(' ');
            if (code != 0 || words.Length != 2 || !long.TryParse(words[0], NumberStyles.None, CultureInfo.InvariantCulture, out var commitTime))
            {
                throw Invalid(setting, $"git found no HEAD commit in {projectDirectory} ({output.Trim()})");
            }
            return new SourceDateEpoch(commitTime, $"git: the time of HEAD ({words[1]})");
        }
        if (long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds <= 253402300799)
        {
            var fromEnvironment = Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH")?.Trim() == value;
            return new SourceDateEpoch(seconds, fromEnvironment ? "SOURCE_DATE_EPOCH" : "MsSourceDateEpoch");
        }
        throw Invalid(setting, "neither Unix seconds nor git nor now");
    }

    /// <summary>Left to the base: the base's time (a tarball's, an image's), when the base exists.</summary>
    public SourceDateEpoch WithBase(DateTimeOffset? baseTime, string baseOrigin) =>
        Origin == BaseOrigin && Seconds is null && baseTime is { } time ? new SourceDateEpoch(time.ToUnixTimeSeconds(), baseOrigin) : this;

    /// <summary>An engine's time (an image's Created), in UTC.</summary>
    public static DateTimeOffset? Utc(DateTime? engineTime) => engineTime is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : null;

    /// <summary>The epoch's line in the inputs key: its value (git's changes with each commit), or how it will be decided.</summary>
    public string KeyValue => Seconds?.ToString(CultureInfo.InvariantCulture) ?? (Origin == BaseOrigin ? BaseOrigin : Now);

    public string Describe() => Seconds is { } s
        ? $"{DateTimeOffset.FromUnixTimeSeconds(s).UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC ({s}), from {Origin}"
        : Origin == BaseOrigin ? "the time of the base this build makes" : Origin;

    private static ImageBuildException Invalid(string setting, string reason) =>
        new(MsiCodes.SourceDateEpochInvalid, MsiMessages.Format("SourceDateEpochInvalid", setting, reason));
}
