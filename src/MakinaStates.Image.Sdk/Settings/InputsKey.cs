using System.Security.Cryptography;
using System.Text;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// The inputs key: one hash of everything that shapes the candidate (the SDK, the platform, the base, the scripts, the
/// build description's settings and items, the injected tree, the corpus commit). The candidate carries it as a label;
/// when the candidate on the engine carries the key of this build, nothing needs to run.
/// <para>
/// This type is the key's one home: it composes the key from the build description (at execution time, so a target
/// that changes a setting before MsResolveSettings changes the key too), matches it against a candidate, and keeps the
/// two amendments a build can make to it once Stage0 wrote it: the tree as it was really sent (a file edited while the
/// build ran), and the base tarball a cold build wrote (keyed as <c>missing</c> at Stage0, recorded as an alias in
/// obj/msimage/ so the next build is up to date).
/// </para>
/// </summary>
public sealed class InputsKey
{
    private const string AliasFile = "candidate-key-alias";
    private const string LastCandidateFile = "candidate-key";

    /// <summary>A cold build's alias whose base tarball its finisher still wrote when the build ended.</summary>
    private const string PendingAliasFile = "candidate-key-alias-pending";

    /// <summary>The base line's value when the base does not exist yet (a cold build).</summary>
    public const string MissingBase = "missing";
    private const string BaseLine = "base";
    private const string TreeLine = "tree";
    private const string EpochLine = "epoch";

    private InputsKey(string text)
    {
        Text = text;
        Value = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>What the key is the hash of, one "name=value" line per input (kept in the build description).</summary>
    public string Text { get; }

    /// <summary>The key itself: the SHA-256 of <see cref="Text"/>, as the candidate's label holds it.</summary>
    public string Value { get; }

    /// <summary>The key as Stage0 wrote it into the build description.</summary>
    public static InputsKey Parse(string text) => new(text);

    /// <param name="baseValue">The base tarball's content hash, the MsBase image id, or <c>missing</c>.</param>
    /// <param name="scripts">Each file sent to the stage containers (name, content hash).</param>
    /// <param name="treeFingerprint">The injected tree's fingerprint (<see cref="Injection.TreeFingerprint"/>).</param>
    public static InputsKey Compose(BuildDescription build, string sdk, string baseValue, IEnumerable<(string Name, string Hash)> scripts,
        string treeFingerprint)
    {
        var text = new StringBuilder();
        // A value's own line breaks are escaped: one line per input, whatever the values hold.
        void Line(string name, string value) => text.Append(name).Append('=').Append(value.Replace("\\", "\\\\").Replace("\n", "\\n")).Append('\n');
        Line("sdk", sdk);
        Line("platform", build.Platform);
        Line(BaseLine, baseValue);
        foreach (var (name, hash) in scripts)
        {
            Line("script:" + name, hash);
        }
        foreach (var (name, value) in build.KeyedSettings())
        {
            Line(name, value);
        }
        // The items that shape the image's config and the build; InjectedVolume items are the tree below.
        foreach (var label in build.Labels)
        {
            Line("Label:" + label.Spec, Metadata(label, "Value"));
        }
        foreach (var variable in build.EnvironmentVariables)
        {
            Line("Env:" + variable.Spec, Metadata(variable, "Value"));
        }
        foreach (var port in build.Ports)
        {
            Line("Port:" + port.Spec, Metadata(port, "Type"));
        }
        foreach (var volume in build.Volumes)
        {
            Line("Volume:" + volume.Spec, "");
        }
        foreach (var secret in build.Secrets)
        {
            // Where its value comes from, never the value: secrets are not in the image.
            Line("Secret:" + secret.Spec, Metadata(secret, "File") + Metadata(secret, "EnvironmentVariable"));
        }
        Line(TreeLine, treeFingerprint);
        Line("corpus", build.CorpusCommit);
        // MsSourceDateEpoch is a setting above; what it resolved to (git's HEAD time moves) is the image's.
        Line(EpochLine, build.SourceDateEpoch?.KeyValue ?? "");
        return new InputsKey(text.ToString());
    }

    private static string Metadata(BuildDescription.Item item, string name) => item.Metadata.TryGetValue(name, out var value) ? value : "";

    /// <summary>The base line's value: <c>missing</c> when Stage0 ran before the base tarball existed.</summary>
    public string Base => Read(BaseLine);

    /// <summary>The tree line's value.</summary>
    public string Tree => Read(TreeLine);

    /// <summary>The same inputs, with the base written since.</summary>
    public InputsKey WithBase(string baseValue) => With(BaseLine, baseValue);

    /// <summary>The same inputs, with the tree as it was sent (it differs when a file was edited during the build).</summary>
    public InputsKey WithTree(string treeFingerprint) => With(TreeLine, treeFingerprint);

    /// <summary>The epoch line's value: <c>base</c> when Stage0 left it to a base that did not exist yet.</summary>
    public string Epoch => Read(EpochLine);

    /// <summary>The same inputs, with the epoch the base this build made gave.</summary>
    public InputsKey WithEpoch(string epoch) => With(EpochLine, epoch);

    /// <summary>The candidate was built from these inputs: its label is this key, or this key is the alias recorded for it.</summary>
    public bool IsCarriedBy(string candidateId, string? candidateLabel, string intermediateDirectory) =>
        candidateLabel == Value || IsAliasOf(candidateId, intermediateDirectory);

    /// <summary>The same, of the candidate as the engine describes it (its id and its label).</summary>
    public bool IsCarriedBy(Engine.ImageSummary candidate, string intermediateDirectory) =>
        IsCarriedBy(candidate.Id, candidate.Labels.TryGetValue(Engine.BuildLabels.InputsKey, out var label) ? label : null, intermediateDirectory);

    /// <summary>Records this key as the one the project's candidate carries now (Stage3 made it, or Stage0 found it).</summary>
    public void RecordAsLastCandidate(string intermediateDirectory)
    {
        Directory.CreateDirectory(intermediateDirectory);
        Concurrency.AtomicFile.WriteAllText(Path.Combine(intermediateDirectory, LastCandidateFile), Value + "\n");
    }

    /// <summary>
    /// Whether the last build of the project left a candidate carrying this key (by its label or its alias): only then
    /// can the build be up to date without the engine having been told of another candidate, so only then does the
    /// no-op path ask the engine. A key never recorded is a build with work to do, or one the whole path judges.
    /// </summary>
    public bool WasLastCandidate(string intermediateDirectory)
    {
        var last = Path.Combine(intermediateDirectory, LastCandidateFile);
        var alias = Path.Combine(intermediateDirectory, AliasFile);
        return (File.Exists(last) && File.ReadAllText(last).Trim() == Value)
               || (File.Exists(alias) && File.ReadAllText(alias).Trim().EndsWith(" " + Value, StringComparison.Ordinal));
    }

    /// <summary>Records this key as another name of the candidate (it was labelled with the key of a base not yet written).</summary>
    public void RecordAlias(string candidateId, string intermediateDirectory)
    {
        Directory.CreateDirectory(intermediateDirectory);
        Concurrency.AtomicFile.WriteAllText(Path.Combine(intermediateDirectory, AliasFile), $"{candidateId} {Value}\n");
    }

    /// <summary>
    /// Records this key (its base still <c>missing</c>) as another name of the candidate once the tarball the finisher
    /// writes from the raw tar imported as <paramref name="importTag"/> exists: the tarball's origin then gives the base's
    /// hash (<see cref="Engine.BaseTarballFinisher.ReadOrigin"/>), and the build is not waited for.
    /// </summary>
    public void RecordPendingAlias(string candidateId, string intermediateDirectory, string tarballPath, string importTag)
    {
        Directory.CreateDirectory(intermediateDirectory);
        Concurrency.AtomicFile.WriteAllLines(Path.Combine(intermediateDirectory, PendingAliasFile), [candidateId, Value, importTag, tarballPath]);
    }

    private bool IsAliasOf(string candidateId, string intermediateDirectory)
    {
        if (intermediateDirectory.Length == 0)
        {
            return false;
        }
        var path = Path.Combine(intermediateDirectory, AliasFile);
        if (File.Exists(path) && File.ReadAllText(path).Trim() == $"{candidateId} {Value}")
        {
            return true;
        }
        var pending = Path.Combine(intermediateDirectory, PendingAliasFile);
        if (!File.Exists(pending) || Read(BaseLine) == MissingBase || File.ReadAllLines(pending) is not [var candidate, var value, var importTag, var tarballPath]
            || candidate != candidateId || value != WithBase(MissingBase).Value)
        {
            return false;
        }
        // The tarball written from the very raw tar the candidate's base was imported from, and this key's base is its hash.
        return Engine.BaseTarballFinisher.ReadOrigin(tarballPath) is { } origin && origin.ImportTag == importTag && origin.Sha256 == Read(BaseLine);
    }

    private string Read(string name)
    {
        var prefix = name + "=";
        return Text.Split('\n').Single(line => line.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..];
    }

    private InputsKey With(string name, string value)
    {
        var prefix = name + "=";
        var lines = Text.Split('\n');
        var index = Array.FindIndex(lines, line => line.StartsWith(prefix, StringComparison.Ordinal));
        if (index < 0)
        {
            throw new InvalidOperationException($"The inputs key has no {name} line.");
        }
        lines[index] = prefix + value;
        return new InputsKey(string.Join('\n', lines));
    }
}
