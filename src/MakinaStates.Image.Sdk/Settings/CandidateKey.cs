using System.Security.Cryptography;
using System.Text;

namespace MakinaStates.Image.Sdk.Settings;

/// <summary>
/// The inputs key a candidate is labelled with, and its alias after a build that made its base: Stage0 keyed that build
/// on a base tarball that did not exist yet (base=missing). Once the tarball is written, the same candidate also stands
/// for the key with the tarball's hash; that alias is kept in obj/msimage/, so the next build finds it up to date
/// instead of redoing Stages 2 and 3 for nothing.
/// </summary>
public static class CandidateKey
{
    private const string AliasFile = "candidate-key-alias";

    public static string Of(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>The base line of a key text: the same for every other input.</summary>
    public static string Line(string baseValue) => $"base={baseValue}\n";

    public static string WithBase(string text, string oldBase, string newBase) => text.Replace(Line(oldBase), Line(newBase), StringComparison.Ordinal);

    public static void WriteAlias(string intermediateDirectory, string candidateId, string key)
    {
        Directory.CreateDirectory(intermediateDirectory);
        File.WriteAllText(Path.Combine(intermediateDirectory, AliasFile), $"{candidateId} {key}\n");
    }

    /// <summary>The alias recorded for this candidate image is this key.</summary>
    public static bool IsAlias(string intermediateDirectory, string candidateId, string key) =>
        intermediateDirectory.Length > 0 && File.Exists(Path.Combine(intermediateDirectory, AliasFile))
        && File.ReadAllText(Path.Combine(intermediateDirectory, AliasFile)).Trim() == $"{candidateId} {key}";
}
